// The counter (loket) page: the officer calls, recalls, serves, finishes and transfers.
//
// URL: counter.html?site=<site>&counter=<counter id>. The officer signs in with the
// counter's token, kept in sessionStorage (gone when the window closes). Every action is a
// POST with its own Idempotency-Key (retried with the same key); every refusal (409
// ticket_taken, counter_busy, ...) is shown with its message, never swallowed. The queue
// list marks what the officer should know of a ticket from antrian online: a booking (and
// its due time while not due), a remote join not yet confirmed at the kiosk.

import { api, newKey, siteUrl } from "./api.js";
import { apply, errorText, mountToggle, onLangChange, pick, t } from "./i18n.js";
import { refresher } from "./live.js";
import { field, followSite, loadSnapshot, signinForm, tokenInput } from "./signin.js";
import {
  $, KeptToken, ServerClock, fill, formatClock, h, minutes, params, stopwatch, store, tickDurations, timeOf, toast,
} from "./ui.js";

const local = store("local");
const query = params();
const site = query.site || local.get("antrian.site");
const counterId = query.counter || null;
const token = new KeptToken(store("session"), `antrian.counter.token.${site}.${counterId}`);

const state = {
  snap: null,
  directory: null,
  pending: false,
  error: null,
};
const clock = new ServerClock();
const main = $("#main");
let live = null;

// -- helpers --------------------------------------------------------------------------------

const me = () => (state.snap ? state.snap.counters.find((c) => c.id === counterId) : null);
const serviceOf = (code) => (state.snap ? state.snap.services.find((s) => s.code === code) : null);
const tz = () => (state.snap ? state.snap.timezone : undefined);

/** The site's minimum calls before a no-show: from the snapshot once it carries it, else
 *  learnt from a `no_show_too_early` refusal (details.required), else the usual default 2. */
function requiredCalls() {
  if (state.snap && Number.isInteger(state.snap.no_show_min_calls)) return state.snap.no_show_min_calls;
  const learnt = Number(local.get(`antrian.noShowMinCalls.${site}`));
  return learnt > 0 ? learnt : 2;
}

function showError(exc) {
  state.error = exc;
  renderBanners();
  if (exc && exc.name === "ApiError" && exc.auth && exc.code !== "counter_not_allowed") {
    token.forget();
  }
}

// -- data -----------------------------------------------------------------------------------

function load() {
  return loadSnapshot(site, token, clock,
    (snap) => { state.snap = snap; render(); refreshWhenDue(snap); },
    (exc) => { state.error = exc; render(); });
}

const refresh = refresher(load, 150);

// A booked ticket not due yet becomes callable (and moves up the list) at its due time,
// with no event to say so: re-read the snapshot just after the next one is due.
let dueTimer = null;
function refreshWhenDue(snap) {
  clearTimeout(dueTimer);
  const now = Date.parse(snap.now);
  let next = null;
  for (const svc of snap.services) {
    for (const tk of svc.tickets || []) {
      const at = Date.parse(tk.enqueued_at);
      if (tk.booked && at > now && (next === null || at < next)) next = at;
    }
  }
  if (next !== null && next - now < 3600000) dueTimer = setTimeout(() => refresh(), next - clock.now() + 1000);
}

// -- actions --------------------------------------------------------------------------------

const DONE = {
  "call-next": "counter.done.next",
  call: "counter.done.next",
  recall: "counter.done.recall",
  start: "counter.done.start",
  finish: "counter.done.finish",
  "no-show": "counter.done.noshow",
  transfer: "counter.done.transfer",
  pause: "counter.done.pause",
  close: "counter.done.close",
  open: "counter.done.open",
};

async function act(action, body = undefined) {
  if (state.pending) return;
  state.pending = true;
  state.error = null;
  renderBanners();
  document.body.dataset.pending = "1";
  try {
    const res = await api(siteUrl(site, `/counters/${encodeURIComponent(counterId)}/${action}`), {
      method: "POST", body, token: token.value, key: newKey(),
    });
    if (state.snap && res.counter) {
      state.snap.counters = state.snap.counters.map((c) => (c.id === counterId ? res.counter : c));
    }
    const ticket = res.ticket || {};
    const service = body && body.service ? pick((serviceOf(body.service) || {}).name) : "";
    toast(t(DONE[action], { number: ticket.number || "", n: ticket.calls, service }), "ok", 3000);
  } catch (exc) {
    if (exc.name === "ApiError" && exc.code === "no_show_too_early" && exc.details.required) {
      local.set(`antrian.noShowMinCalls.${site}`, String(exc.details.required));
    }
    showError(exc);
  } finally {
    state.pending = false;
    delete document.body.dataset.pending;
    render();
    refresh(true);
  }
}

function finishDialog() {
  const dialog = $("#finish-dialog");
  const c = me();
  $("#finish-title").textContent = t("counter.finish.title", { number: c.ticket.number });
  dialog.returnValue = "";
  dialog.onclose = () => { if (dialog.returnValue) act("finish", { outcome: dialog.returnValue }); };
  dialog.showModal();
}

function transferDialog() {
  const dialog = $("#transfer-dialog");
  const c = me();
  $("#transfer-title").textContent = t("counter.transfer.title", { number: c.ticket.number });
  const select = $("#transfer-service");
  const groups = state.snap.agencies.map((agency) => {
    const options = state.snap.services
      .filter((s) => s.agency === agency.id && s.code !== c.ticket.service)
      .map((s) => h("option", { value: s.code }, `${s.prefix} — ${pick(s.name)}`));
    return options.length ? h("optgroup", { label: agency.name }, options) : null;
  });
  fill(select, groups);
  dialog.returnValue = "";
  dialog.onclose = () => { if (dialog.returnValue === "ok" && select.value) act("transfer", { service: select.value }); };
  dialog.showModal();
}

function pauseDialog() {
  const dialog = $("#pause-dialog");
  const input = $("#pause-reason");
  input.value = "";
  fill($("#pause-presets"), t("counter.pause.presets").split("|").map((reason) =>
    h("button", { class: "btn", type: "button", onclick: () => { input.value = reason; dialog.close("ok"); } }, reason)));
  dialog.returnValue = "";
  dialog.onclose = () => {
    const reason = input.value.trim();
    if (dialog.returnValue === "ok" && reason) act("pause", { reason });
  };
  dialog.showModal();
}

/** What each button does and whether it may be pressed now. */
function actions() {
  const c = me();
  const held = c && c.ticket;
  const open = c && c.state === "open";
  const called = held && held.state === "called";
  const need = requiredCalls();
  return {
    next: { key: "n", label: t("act.next"), run: () => act("call-next"), enabled: open && !held },
    recall: { key: "r", label: held ? `${t("act.recall")} (${held.calls}×)` : t("act.recall"), run: () => act("recall"), enabled: called },
    start: { key: "s", label: t("act.start"), run: () => act("start"), enabled: called && c.uses_start },
    finish: { key: "f", label: t("act.finish"), run: finishDialog, enabled: !!held },
    noshow: {
      key: "x", label: t("act.noshow"), run: () => act("no-show"), enabled: called && held.calls >= need,
      hint: called && held.calls < need ? t("counter.noshow.hint", { n: need }) : null,
    },
    transfer: { key: "t", label: t("act.transfer"), run: transferDialog, enabled: !!held },
    pause: { key: "p", label: t("act.pause"), run: pauseDialog, enabled: open && !held },
    close: { key: null, label: t("act.close"), run: () => act("close"), enabled: c && c.state !== "closed" && !held },
    open: { key: "o", label: t("act.open"), run: () => act("open"), enabled: c && c.state !== "open" },
  };
}

function button(name, spec, cls = "") {
  return h("button", {
    class: `btn ${cls}`, type: "button", id: `act-${name}`, disabled: !spec.enabled || state.pending,
    title: spec.hint || null, "aria-keyshortcuts": spec.key ? spec.key.toUpperCase() : null,
    onclick: () => spec.enabled && spec.run(),
  }, h("span", {}, spec.label), spec.key ? h("kbd", {}, spec.key.toUpperCase()) : null);
}

document.addEventListener("keydown", (event) => {
  if (!state.snap || !token.value || event.ctrlKey || event.altKey || event.metaKey) return;
  if (event.target.closest("input, select, textarea, dialog") || document.querySelector("dialog[open]")) return;
  const key = event.key.toLowerCase();
  const entry = Object.values(actions()).find((a) => a.key === key);
  if (!entry) return;
  event.preventDefault();
  if (state.pending) return;
  if (entry.enabled) entry.run();
  else if (entry.hint) toast(entry.hint, "warn", 3000);
});

// -- rendering ------------------------------------------------------------------------------

function stateLabel(c) {
  if (c.state === "paused") return t("counter.paused_reason", { reason: c.reason || "" });
  return t(`cstate.${c.state}`);
}

function stateClass(c) {
  return c.state === "open" ? "pill-ok" : c.state === "paused" ? "pill-warn" : "pill-bad";
}

function renderBanners() {
  const area = $("#banners");
  if (!area) return;
  const exc = state.error;
  if (!exc) { fill(area); return; }
  const conflict = exc.name === "ApiError" && exc.status === 409;
  fill(area, h("div", { class: `alert ${conflict ? "alert-bad" : "alert-warn"}`, role: "alert", id: "action-error", dataset: { code: exc.code || "network" } },
    h("div", {},
      h("strong", {}, conflict ? `${t("err.conflict_title")}: ${errorText(exc)}` : errorText(exc)),
      exc.name === "ApiError" ? h("span", { class: "muted" }, `${exc.message} (${exc.code})`) : null),
    h("button", { class: "alert-close", type: "button", "aria-label": t("common.close"), onclick: () => { state.error = null; renderBanners(); } }, "×")));
}

function servingCard(c) {
  const held = c.ticket;
  const a = actions();
  const svc = held ? serviceOf(held.service) : null;
  let info;
  if (held) {
    const sinceIso = held.state === "serving" ? held.started_at : held.called_at;
    info = h("div", { class: "serving-info" },
      h("span", { class: "serving-service" }, svc ? pick(svc.name) : held.service),
      h("div", {},
        h("span", { class: `pill ${held.state === "serving" ? "pill-ok" : "pill-info"}` }, t(`state.${held.state}`)), " ",
        held.priority ? h("span", { class: "pill pill-warn" }, t(`priority.${held.priority}`)) : null, " ",
        held.state === "called" ? h("span", { class: "pill", id: "call-count" }, t("counter.calls", { n: held.calls })) : null),
      h("span", { class: "serving-since" },
        held.state === "serving" ? t("counter.started_at", { time: timeOf(sinceIso, tz(), true) }) : t("counter.called_at", { time: timeOf(sinceIso, tz(), true) }),
        " · ", h("b", { class: "js-since", dataset: { since: sinceIso } }, stopwatch(clock.secondsSince(sinceIso)))));
  } else {
    info = h("div", { class: "serving-info" }, h("span", { class: "serving-service muted" }, t("counter.none")),
      h("span", { class: "muted" }, t("counter.none.text")));
  }
  return h("section", { class: "card serving-card", "aria-labelledby": "serving-title" },
    h("div", { class: "serving-head" },
      h("h2", { id: "serving-title" }, t("counter.serving")),
      h("span", { class: `pill ${stateClass(c)}`, id: "counter-state" }, stateLabel(c))),
    h("div", { class: "serving-body" },
      h("span", { class: `serving-number${held ? "" : " empty"}`, id: "serving-number" }, held ? held.number : "—"),
      info),
    h("div", { class: "actions" },
      button("next", a.next, "btn-primary btn-main"),
      button("recall", a.recall),
      button("start", a.start),
      button("finish", a.finish, "btn-ok"),
      button("noshow", a.noshow, "btn-danger"),
      button("transfer", a.transfer),
      h("span", { class: "muted", id: "noshow-hint" }, a.noshow.hint || "")));
}

function controls(c) {
  const a = actions();
  return h("section", { class: "card counter-controls", "aria-label": t("counter.state") },
    h("span", { class: "label" }, `${t("counter.state")}: `, h("span", {}, stateLabel(c)),
      c.since ? h("span", { class: "muted" }, ` · ${timeOf(c.since, tz())}`) : null),
    button("pause", a.pause), button("close", a.close, "btn-danger"), button("open", a.open, "btn-ok"));
}

/** Whether a waiting ticket of the snapshot (taken at `now`, ms) is a checked-in booking
 *  not due yet: not callable by call-next before its due time, which its queue time starts
 *  at (`enqueued_at` is the due time of a booking checked in before it). */
const notDueYet = (tk, now) => tk.booked && Date.parse(tk.enqueued_at) > now;

/** The counter's waiting tickets in the order its call-next hands them out, then the
 *  checked-in bookings not due yet (by due time). Each service's tickets come in the
 *  snapshot's call order (its priority policy and bookings due applied by the server), its
 *  bookings not due yet after them; across services, call-next takes, among the services'
 *  next tickets, a priority one of a service that uses priority first, then a booking due
 *  (by due time), then the earliest issued (domain/commands.call_next). Never re-sorted
 *  here by other rules. */
function callOrder(services, now) {
  const all = services.map((svc) => (svc.tickets || []).map((tk) => ({ ...tk, svc })));
  const lists = all.map((list) => list.filter((tk) => !notDueYet(tk, now)));
  // Times to the microsecond the server gives (Date.parse stops at milliseconds).
  const micros = (iso) => { const m = /\.(\d+)/.exec(iso); return m ? Number(m[1].padEnd(6, "0").slice(3, 6)) : 0; };
  // A booking's due time: the snapshot's `due_at` where it gives one, else its queue
  // time's start (the same instant unless it checked in after its slot began).
  const at = (tk) => (tk.booked ? tk.due_at || tk.enqueued_at : tk.issued_at);
  const key = (tk) => [tk.priority && tk.svc.priority_policy !== "fifo" ? 0 : 1, tk.booked ? 0 : 1, Date.parse(at(tk)), micros(at(tk))];
  const before = (a, b) => { for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i]; return false; };
  const out = [];
  for (;;) {
    let best = null;
    for (const list of lists) {
      if (list.length && (best === null || before(key(list[0]), key(best[0])))) best = list;
    }
    if (best === null) break;
    out.push(best.shift());
  }
  const rest = all.flat().filter((tk) => notDueYet(tk, now))
    .sort((a, b) => Date.parse(a.enqueued_at) - Date.parse(b.enqueued_at));
  return { callable: out, later: rest };
}

/** What the officer should know of a waiting ticket: a booking (with its due time while
 *  not due yet; one of a service whose bookings join at check-in has none), a remote join
 *  not confirmed at the kiosk yet. Nothing personal. */
function marks(tk, notDue) {
  const booking = tk.booked || tk.source === "booking";
  const time = notDue ? timeOf(tk.enqueued_at, tz()) : null;
  const title = notDue ? t("bk.mark.later.title", { time }) : t(tk.booked ? "bk.mark.due" : "bk.mark.fifo");
  return [
    booking
      ? h("span", { class: "pill pill-info q-mark q-booking", title }, notDue ? t("bk.mark.later", { time }) : t("bk.mark"))
      : null,
    tk.confirmed === false
      ? h("span", { class: "pill pill-warn q-mark q-unconfirmed", title: t("bk.unconfirmed.title") }, t("bk.unconfirmed"))
      : null,
  ];
}

function queueCard(c) {
  const codes = new Set(c.services);
  const { callable, later: notDue } = callOrder(state.snap.services.filter((svc) => codes.has(svc.code)), Date.parse(state.snap.now));
  const tickets = [...callable, ...notDue];
  const canCall = c.state === "open" && !c.ticket;
  const targets = [...codes].map((code) => serviceOf(code)).filter(Boolean)
    .map((s) => `${s.prefix}: ${minutes(s.target_wait_seconds)}`).join(" · ");
  return h("section", { class: "card queue-card", "aria-labelledby": "queue-title" },
    h("div", { class: "queue-head" },
      h("h2", { id: "queue-title" }, t("counter.queue.title")),
      h("span", { class: "muted", id: "queue-count" }, t("counter.queue.count", { n: tickets.length }))),
    h("div", { class: "queue-head muted" }, h("small", {}, t("counter.queue.target", { d: targets }))),
    tickets.length
      ? h("ul", { class: "queue-list", id: "queue" },
        callable.map((tk) => queueItem(tk, canCall, false)),
        notDue.length ? h("li", { class: "queue-sep", id: "queue-later" }, t("bk.later")) : null,
        notDue.map((tk) => queueItem(tk, canCall, true)))
      : h("p", { class: "queue-empty" }, t("counter.queue.empty")));
}

/** One waiting ticket of the queue list; a booking not due yet (`notDue`) shows its due
 *  time in its mark, and no wait (its queue time starts then). */
function queueItem(tk, canCall, notDue) {
  return h("li", { dataset: { number: tk.number, ticket: tk.id } },
    h("span", { class: "q-number" }, tk.number),
    h("span", { class: "q-service" }, h("span", { class: "q-name" }, pick(tk.svc.name)),
      tk.priority ? h("span", { class: "pill pill-warn q-mark" }, t(`priority.${tk.priority}`)) : null,
      ...marks(tk, notDue)),
    notDue
      ? h("span", { class: "q-wait q-later muted" }, "–")
      : h("span", { class: "q-wait js-wait", dataset: { since: tk.enqueued_at, target: tk.svc.target_wait_seconds } }),
    h("button", {
      class: "btn q-call", type: "button", disabled: !canCall || state.pending,
      "aria-label": `${t("act.call")} ${tk.number}`, onclick: () => act("call", { ticket_id: tk.id }),
    }, t("act.call")));
}

function tick() {
  $("#clock").textContent = formatClock(clock.now(), tz());
  tickDurations(clock);
}

function signin() {
  const label = state.directory ? (state.directory.counters.find((c) => c.id === counterId) || {}).name : counterId;
  return signinForm({
    title: t("counter.signin.title", { counter: label || counterId }),
    error: state.error,
    fields: field("token", t("counter.signin.token"), tokenInput(), t("counter.signin.hint")),
    submit: t("common.signin"),
    onSubmit: async (form) => {
      token.set(form.token.value.trim());
      state.error = null;
      await load();
      if (token.value) startLive();
    },
  });
}

function pickCounter() {
  const d = state.directory;
  return h("section", { class: "card signin" },
    h("h1", {}, t("counter.pick.title")),
    d ? h("div", { class: "choice-list" }, d.counters.map((c) =>
      h("a", { class: "btn", href: `counter.html?site=${encodeURIComponent(site)}&counter=${encodeURIComponent(c.id)}` }, c.name)))
      : h("p", { class: "muted" }, t("common.loading")));
}

function render() {
  $("#signout").hidden = !token.value;
  if (state.directory) $("#site-name").textContent = state.directory.name;
  if (!counterId) { fill(main, pickCounter()); return; }
  if (!token.value) { fill(main, signin()); $("#token").focus(); return; }
  if (!state.snap) { fill(main, h("p", { class: "signin muted" }, t("common.loading"))); return; }
  const c = me();
  if (!c) { fill(main, h("div", { class: "signin alert alert-bad" }, t("err.unknown_counter"))); return; }
  $("#counter-name").textContent = c.name;
  $("#site-name").textContent = state.snap.name;
  document.title = `${c.name} — Antrian`;
  const focused = document.activeElement && document.activeElement.id;
  fill(main, h("div", { class: "counter-main" },
    h("div", { class: "left-col" },
      h("div", { class: "banner-area", id: "banners" }),
      servingCard(c),
      controls(c),
      h("p", { class: "kbd-help" }, `${t("counter.kbd")}: `,
        ...["n", "r", "s", "f", "x", "t", "p", "o"].map((k) => h("span", {}, h("kbd", {}, k.toUpperCase()), " ",
          Object.values(actions()).find((a) => a.key === k).label.replace(/ \(.*\)$/, ""))))),
    h("div", { class: "right-col" }, queueCard(c))));
  renderBanners();
  tick();
  if (focused) { const el = document.getElementById(focused); if (el && !el.disabled) el.focus(); }
}

function startLive() {
  if (live) live.stop();
  live = followSite(site, token, refresh, () => state.snap);
}

$("#signout").addEventListener("click", () => {
  token.forget();
  state.snap = null;
  if (live) live.stop();
  render();
});

apply();
mountToggle($("#lang"));
onLangChange(render);
setInterval(tick, 1000);
render();
api(siteUrl(site)).then((d) => { state.directory = d; if (!state.snap) render(); }).catch(() => {});
if (token.value && counterId) {
  load().catch(() => {});
  startLive();
}
