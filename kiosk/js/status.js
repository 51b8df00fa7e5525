// The citizen's ticket status, opened from the QR code: status.html#<ticket id>.
//
// Refreshes itself: every 10 s while visible, at once when the phone shows the page again,
// and soon after any public stream event of the ticket's service. The ticket id in the
// fragment is the citizen's capability (a fragment is never sent to a server or a
// Referer); it also lets the citizen cancel a waiting ticket. Times are shown in the
// site's timezone (the ticket's `timezone`), not the phone's: a visitor's phone may still
// be on another zone's time.
//
// Notices while the page is open, with no outside push service: when the ticket's turn is
// near (the server's `near`: the service's "N ahead or under M minutes") and each time it
// is called, a banner, a sound made with WebAudio and, once the citizen allowed it with
// the "Aktifkan pemberitahuan" button (a browser asks only on a touch), a system
// notification. Where the page may not construct one (Android's Chrome allows only a
// service worker's), a minimal worker (js/notify-worker.js) shows it. Each notice is fired
// once per ticket (a recall fires again); `window.antrianNotices` lists them.

import { api, newKey, ticketUrl } from "./api.js";
import { apply, errorText, mountToggle, onLangChange, pick, t } from "./i18n.js";
import { Live, refresher } from "./live.js";
import { forgetJoinCode, joinCode } from "./joins.js";
import { audioContext } from "./speech.js";
import { surveyCard } from "./survey.js";
import { $, fill, formatClock, h, markReady, minutes, timeOf, toast } from "./ui.js";

const POLL_MS = 10000;
const FINAL = new Set(["done", "no_show", "cancelled"]);
const main = $("#main");
const state = { id: null, ticket: null, error: null, updated: null, busy: false, survey: null, notify: "off", booking: null };
let live = null;

function ticketId() {
  try { return decodeURIComponent(location.hash.slice(1)).trim() || null; } catch { return null; }
}

async function load() {
  if (!state.id) return;
  try {
    const ticket = await api(ticketUrl(state.id));
    const seen = state.ticket && state.ticket.id === ticket.id;
    state.ticket = ticket;
    state.error = null;
    state.updated = Date.now();
    announce(ticket, seen);
    if (ticket.confirmed !== false) forgetJoinCode(ticket.id);
    follow(ticket);
    await loadBooking(ticket);
    await loadSurvey(ticket);
  } catch (exc) {
    state.error = exc;
    // Tickets live for one service day, but a served visit can be rated for a week: on a
    // later day the survey is still offered on its own.
    if (exc.name === "ApiError" && exc.notFound && !state.ticket) await loadLateSurvey();
  }
  render();
  markReady();
}

/** A booked ticket's booking (read once), for its slot. */
async function loadBooking(ticket) {
  if (!ticket.booking || (state.booking && state.booking.id === ticket.booking)) return;
  try {
    state.booking = await api(`/api/v1/bookings/${encodeURIComponent(ticket.booking)}`);
  } catch {
    state.booking = null; // the status shows without the slot; read again on refresh
  }
}

async function loadLateSurvey() {
  if (state.survey && state.survey.id === state.id) return;
  try {
    const info = await api(ticketUrl(state.id, "/survey"));
    if (info.status !== "not_served") state.survey = { id: state.id, info };
  } catch {
    state.survey = null; // unknown ticket: the page says so
  }
}

/** A past day's served visit: its number and the survey, without the live status. */
function lateSurvey() {
  const info = state.survey.info;
  $("#site-name").textContent = info.site_name;
  document.title = `${info.ticket || ""} — ${t("status.sub")}`;
  if (!state.survey.card) {
    state.survey.card = surveyCard({
      ticketId: state.id,
      info,
      channel: "phone",
      onDone: (next) => { state.survey = { id: state.id, info: next }; render(); },
    });
  }
  fill(main,
    h("section", { class: "card status-card", dataset: { state: "done" } },
      h("span", { class: "status-number", id: "number" }, info.ticket || ""),
      h("span", { class: "status-service" }, pick(info.service_name)),
      h("span", { class: "pill pill-ok", id: "state" }, t("state.done"))),
    state.survey.card);
}

/** Once the visit ended served, the satisfaction survey (read once per ticket). */
async function loadSurvey(ticket) {
  if (ticket.state !== "done" || ticket.outcome !== "served") return;
  if (state.survey && state.survey.id === ticket.id) return;
  try {
    state.survey = { id: ticket.id, info: await api(ticketUrl(ticket.id, "/survey")) };
  } catch {
    state.survey = null; // the status still shows; the survey is tried again on refresh
  }
}

// The card is built once per survey state and kept across re-renders (a refresh when the
// phone shows the page again must not wipe answers being given).
function survey() {
  const tk = state.ticket;
  if (!state.survey || !tk || state.survey.id !== tk.id) return null;
  if (!state.survey.card) {
    state.survey.card = surveyCard({
      ticketId: tk.id,
      info: state.survey.info,
      channel: "phone",
      onDone: (info) => { state.survey = { id: tk.id, info }; render(); },
    });
  }
  return state.survey.card;
}

const refresh = refresher(load, 500);

/** Listen to the site's public stream while the ticket can still change. */
function follow(ticket) {
  if (FINAL.has(ticket.state)) {
    if (live) { live.stop(); live = null; }
    return;
  }
  if (live && live.site === ticket.site) return;
  if (live) live.stop();
  live = new Live({
    site: ticket.site,
    onEvent: (event) => {
      const current = state.ticket;
      if (!current) return;
      if (event.service === current.service || event.number === current.number) refresh();
    },
    onResync: () => refresh(),
  }).start();
}

// -- notices ------------------------------------------------------------------------------

const notices = [];
globalThis.antrianNotices = notices;
const fired = new Set();

/** The notice the ticket calls for now, keyed so that each is fired once (a recall anew). */
function noticeOf(tk) {
  if (tk.state === "called") return { kind: "called", key: `${tk.id}:called:${tk.calls}` };
  if (tk.state === "waiting" && tk.near) return { kind: "near", key: `${tk.id}:near` };
  return null;
}

/** Fire the ticket's notice if it is new. What the page found on its first read is only
 *  marked: the citizen is looking at it already. */
function announce(tk, seen) {
  const notice = noticeOf(tk);
  if (!notice || fired.has(notice.key)) return;
  fired.add(notice.key);
  if (!seen) return;
  const counter = tk.counter_name || tk.counter || "";
  const title = t(`status.${notice.kind}.title`, { number: tk.number });
  const body = notice.kind === "called" ? t("status.called.body", { counter }) : t("status.near", { n: tk.people_ahead });
  const shown = showNotification(title, { body, tag: `antrian-${tk.id}`, renotify: true, icon: "img/icon.svg", data: { url: location.href } });
  const sound = beep(notice.kind);
  if (navigator.vibrate) navigator.vibrate(notice.kind === "called" ? [300, 150, 300, 150, 300] : [200]);
  notices.push({ kind: notice.kind, number: tk.number, notification: shown, sound, at: Date.now() });
}

/** A system notification if the citizen allowed them: the page's own, else the worker's. */
function showNotification(title, options) {
  if (!globalThis.Notification || Notification.permission !== "granted") return false;
  try {
    const note = new Notification(title, options);
    note.onclick = () => { focus(); note.close(); };
    return true;
  } catch {
    // Chrome on Android: "Illegal constructor", only a service worker may show one.
    if (!worker) return false;
    worker.then((reg) => reg.showNotification(title, options)).catch(() => {});
    return true;
  }
}

let worker = null;

/** Register the worker (its scope is js/, not this page: it only shows notifications);
 *  `worker` resolves to its registration once the worker is active. */
function startWorker() {
  if (worker || !navigator.serviceWorker) return;
  worker = navigator.serviceWorker.register("js/notify-worker.js").then((reg) => {
    const pending = reg.installing || reg.waiting;
    if (reg.active || !pending) return reg;
    return new Promise((resolve) => {
      pending.addEventListener("statechange", () => { if (pending.state === "activated") resolve(reg); });
    });
  });
  worker.catch(() => { worker = null; });
}

/** Short tones made here (no sound file): two for "near", three, twice, for a call. Plays
 *  only once the page was touched (the button below), as browsers require. */
function beep(kind) {
  const ctx = audioContext();
  if (!ctx || ctx.state !== "running") return false;
  const [freq, count] = kind === "called" ? [880, 6] : [660, 2];
  const start = ctx.currentTime + 0.05;
  for (let i = 0; i < count; i++) {
    const at = start + i * 0.3 + (i >= 3 ? 0.5 : 0);
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = "sine";
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.4, at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.22);
    osc.connect(gain).connect(ctx.destination);
    osc.start(at);
    osc.stop(at + 0.25);
  }
  return true;
}

/** The button's touch: ask for notifications, and let the page make sounds. */
async function enableNotices() {
  const ctx = audioContext();
  if (ctx && ctx.state !== "running") {
    try { await ctx.resume(); } catch { /* no sound on this browser */ }
  }
  if (globalThis.Notification && Notification.permission === "default") {
    try { await Notification.requestPermission(); } catch { /* an old browser's callback form */ }
  }
  noticeState();
  render();
}

/** "off" until the page may make sounds (the button is offered), then "on" with system
 *  notifications allowed, "blocked" without them (the banner and the sound still work). A
 *  browser without WebAudio has no sound to wait for. */
function noticeState() {
  const ctx = audioContext();
  const sound = !ctx || ctx.state === "running";
  const permission = globalThis.Notification ? Notification.permission : "unsupported";
  if (permission === "granted") startWorker();
  state.notify = !sound || permission === "default" ? "off" : permission === "granted" ? "on" : "blocked";
}

function noticeCard(tk) {
  if (FINAL.has(tk.state)) return null;
  if (state.notify === "off") {
    return h("section", { class: "card notify-card" },
      h("p", {}, t("status.notify.text")),
      h("button", { class: "btn btn-primary", type: "button", id: "notify-enable", onclick: enableNotices }, t("status.notify")));
  }
  return h("p", { class: "muted", id: "notify-note", dataset: { notify: state.notify } },
    t(state.notify === "on" ? "status.notify.on" : "status.notify.blocked"));
}

function confirmCode(tk) {
  if (tk.confirmed !== false || FINAL.has(tk.state)) return null;
  const code = joinCode(tk.id);
  return h("div", { class: "alert alert-warn confirm-code", role: "status", id: "confirm-needed" },
    h("span", {}, t(code ? "status.confirm.needed" : "status.confirm.needed.nocode")),
    code ? h("b", { id: "confirm-code" }, code) : null,
    h("small", {}, t("status.confirm.rule")));
}

function facts(tk) {
  return h("div", { class: "status-facts" },
    h("div", { class: "fact" }, h("b", { id: "position" }, tk.position ?? "–"), h("span", {}, t("status.position"))),
    h("div", { class: "fact" }, h("b", { id: "people-ahead" }, tk.people_ahead), h("span", {}, t("status.ahead"))));
}

function message(tk) {
  const counter = tk.counter_name || tk.counter || "";
  switch (tk.state) {
    case "waiting": return h("p", { class: "status-big" }, t("status.waiting"));
    case "called": return h("div", { class: "call-alert", role: "alert", id: "notice-banner", dataset: { kind: "called" } }, t("status.called", { counter }));
    case "serving": return h("p", { class: "status-big" }, t("status.serving", { counter }));
    case "done": return h("p", { class: "status-big" }, t("status.done"));
    case "no_show": return h("p", { class: "status-big" }, t("status.no_show"));
    default: return h("p", { class: "status-big" }, t("status.cancelled"));
  }
}

function render() {
  if (!state.id) { fill(main, h("div", { class: "alert alert-warn" }, t("status.missing"))); return; }
  const exc = state.error;
  const tk = state.ticket;
  if (!tk) {
    if (!exc) { fill(main, h("p", { class: "muted" }, t("common.loading"))); return; }
    if (state.survey && state.survey.id === state.id) { lateSurvey(); return; }
    fill(main, h("div", { class: "alert alert-bad", role: "alert", id: "status-error" },
      exc.name === "ApiError" && exc.notFound ? t("status.notfound") : errorText(exc)));
    return;
  }
  $("#site-name").textContent = tk.site_name;
  document.title = `${tk.number} — ${t("status.sub")}`;
  document.body.dataset.state = tk.state;
  fill(main,
    exc ? h("div", { class: "alert alert-warn", role: "status" }, errorText(exc)) : null,
    tk.state === "waiting" && tk.near
      ? h("div", { class: "notice-banner", role: "alert", id: "notice-banner", dataset: { kind: "near" } }, t("status.near", { n: tk.people_ahead }))
      : null,
    h("section", { class: "card status-card", dataset: { state: tk.state }, "aria-labelledby": "number" },
      h("span", { class: "ticket-label muted" }, pick(tk.service_name) ? t("kiosk.confirm.label") : ""),
      h("span", { class: "status-number", id: "number" }, tk.number),
      h("span", { class: "status-service" }, pick(tk.service_name)),
      state.booking && state.booking.id === tk.booking
        ? h("span", { class: "pill pill-info", id: "slot" }, t("status.slot", { time: `${state.booking.slot}–${state.booking.slot_end}` })) : null,
      h("span", { class: `pill ${tk.state === "waiting" ? "pill-info" : tk.state === "done" ? "pill-ok" : FINAL.has(tk.state) ? "" : "pill-warn"}`, id: "state" },
        t(`state.${tk.state}`)),
      message(tk),
      tk.state === "waiting" ? facts(tk) : null,
      tk.state === "waiting" ? h("div", { class: "fact", style: "width:100%" },
        h("b", { id: "estimate" }, minutes(tk.estimated_wait_seconds)), h("span", {}, t("status.estimate")),
        estimateRange(tk.estimated_wait_range_seconds)) : null,
      tk.state === "done" && tk.outcome && tk.outcome !== "served" ? h("span", { class: "pill" }, t(`outcome.${tk.outcome}`)) : null,
      confirmCode(tk)),
    noticeCard(tk),
    survey(),
    !FINAL.has(tk.state) && tk.now_calling.length
      ? h("section", { class: "card status-card", "aria-labelledby": "now-calling-title" },
        h("span", { class: "muted", id: "now-calling-title" }, t("status.now_calling")),
        h("div", { class: "now-calling", id: "now-calling" }, tk.now_calling.map((n) => h("span", { class: `pill ${n === tk.number ? "pill-warn" : "pill-info"}` }, n))))
      : null,
    tk.state === "waiting"
      ? h("button", { class: "btn btn-lg btn-danger", type: "button", id: "cancel", disabled: state.busy, onclick: askCancel }, t("status.cancel"))
      : null,
    h("div", { class: "status-foot" },
      h("span", { id: "updated" }, state.updated ? t("status.updated", { time: formatClock(state.updated, tk.timezone, true) }) : ""),
      h("span", { id: "issued" }, t("status.issued", { time: timeOf(tk.issued_at, tk.timezone) }))),
    h("button", { class: "btn", type: "button", onclick: () => refresh(true) }, t("status.refresh")));
}

function askCancel() {
  const dialog = $("#cancel-dialog");
  $("#cancel-title").textContent = t("status.cancel.title", { number: state.ticket.number });
  dialog.returnValue = "";
  dialog.onclose = () => { if (dialog.returnValue === "yes") cancel(); };
  dialog.showModal();
}

async function cancel() {
  if (state.busy) return;
  state.busy = true;
  render();
  try {
    state.ticket = await api(ticketUrl(state.id, "/cancel"), { method: "POST", body: {}, key: newKey() });
    state.updated = Date.now();
    toast(t("status.cancelled.toast"), "ok", 4000);
    follow(state.ticket);
  } catch (exc) {
    toast(errorText(exc), "bad", 8000);
  } finally {
    state.busy = false;
    render();
    refresh();
  }
}

apply();
mountToggle($("#lang"));
onLangChange(() => { if (state.survey) state.survey.card = null; render(); });
noticeState();
state.id = ticketId();
render();
load();
setInterval(() => {
  if (!document.hidden && !(state.ticket && FINAL.has(state.ticket.state))) refresh();
}, POLL_MS);
document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(true); });
addEventListener("hashchange", () => {
  state.id = ticketId();
  state.ticket = null;
  state.survey = null;
  render();
  refresh(true);
});

/** The range about the estimate (8 in 10 waits fall in it: docs/estimate.md), in whole
 * minutes; nothing where there is none or it runs past an hour and a half. */
function estimateRange(range) {
  if (!Array.isArray(range) || range.length !== 2) return null;
  const low = Math.max(0, Math.round(range[0] / 60));
  const high = Math.max(low, Math.round(range[1] / 60));
  if (high >= 90) return null;
  return h("span", { class: "muted", id: "estimate-range" }, t("status.range", { low, high }));
}

