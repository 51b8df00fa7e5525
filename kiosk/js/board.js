// The floor manager's board: queues against their standard, counters, devices, and today's
// bookings (antrian online) where the hall takes them. Live, no reloads.
//
// URL: board.html?site=<site>&token=<manager token>. A wall screen is provisioned once: the
// token is kept in localStorage and taken out of the address bar.

import { apply, mountToggle, onLangChange, pick, t } from "./i18n.js";
import { refresher } from "./live.js";
import { field, followSite, loadSnapshot, signinForm, tokenInput } from "./signin.js";
import {
  $, KeptToken, ServerClock, fill, formatClock, h, level, minutes, params, stopwatch, store, tickDurations,
} from "./ui.js";

const local = store("local");
const site = params().site || local.get("antrian.site");
const token = new KeptToken(local, `antrian.board.token.${site}`);

const state = { snap: null, error: null };
const clock = new ServerClock();
const content = $("#content");
let live = null;

const tz = () => (state.snap ? state.snap.timezone : undefined);

function load() {
  return loadSnapshot(site, token, clock,
    (snap) => { state.snap = snap; state.error = null; render(); },
    (exc) => { state.error = exc; render(); });
}

const refresh = refresher(load, 300);

// -- pieces ---------------------------------------------------------------------------------

/** A published share (0..1, 4 decimals) as a whole percent that never claims more or less
 *  than it is: 0.9951 is "99%" (not "100%" while a ticket breached), 0.004 is "1%". */
function sharePercent(share) {
  if (share === null || share === undefined) return "–";
  let pct = Math.round(share * 100);
  if (pct === 100 && share < 1) pct = 99;
  if (pct === 0 && share > 0) pct = 1;
  return `${pct}%`;
}

// The headline figures against the standard are the snapshot's `headline`, computed once
// on the server (domain/standard.py): the board formats them and computes none of its own.
function kpis(snap) {
  const head = snap.headline;
  const finished = snap.services.reduce((n, s) => n + s.finished_today, 0);
  const open = snap.counters.filter((c) => c.state === "open").length;
  const worst = head.worst_queue;
  const judged = head.called_today + head.waiting_over_target;
  const kpi = (id, label, value, sub = null, cls = "") =>
    h("div", { class: "card kpi", id }, h("span", {}, label), h("b", { class: cls || null }, value), sub ? h("small", { class: "muted" }, sub) : null);
  return h("div", { class: "kpis" },
    kpi("kpi-waiting", t("kpi.waiting"), head.waiting),
    worst
      ? h("div", { class: "card kpi", id: "kpi-worst", dataset: { service: worst.service } }, h("span", {}, t("kpi.worst")),
        h("b", { class: `js-wait lvl-${level(worst.oldest_wait_seconds, worst.target_wait_seconds)}`, dataset: { since: worst.oldest_enqueued_at, target: worst.target_wait_seconds } },
          stopwatch(clock.secondsSince(worst.oldest_enqueued_at))),
        h("small", { class: "muted" }, `${worst.prefix} · ${pick(worst.name)} · ${t("kpi.target", { d: minutes(worst.target_wait_seconds) })}`))
      : kpi("kpi-worst", t("kpi.worst"), "–"),
    kpi("kpi-within", t("kpi.within"), sharePercent(head.within_standard_share),
      judged ? t("kpi.within.sub", { w: head.called_within_target_today, n: judged, over: head.waiting_over_target }) : null),
    kpi("kpi-breach", t("kpi.breach"), head.queues_in_breach, t("kpi.breach.sub", { n: head.queues_waiting }),
      head.queues_in_breach ? "lvl-bad" : "lvl-ok"),
    kpi("kpi-counters", t("kpi.counters"), open, t("kpi.of", { n: snap.counters.length })),
    kpi("kpi-finished", t("kpi.finished"), finished));
}

// The headline moves with the clock alone when a waiting ticket passes its target: re-read
// the snapshot just after the next one does, rather than show a stale share until an event.
let crossingTimer = null;
function refreshAtNextCrossing(snap) {
  clearTimeout(crossingTimer);
  let next = null;
  for (const s of snap.services) {
    for (const tk of s.tickets || []) {
      const left = s.target_wait_seconds - tk.wait_seconds;
      if (left >= 0 && (next === null || left < next)) next = left;
    }
  }
  if (next !== null && next < 3600) crossingTimer = setTimeout(() => refresh(), (next + 1) * 1000);
}

function meter(since, target) {
  const secs = clock.secondsSince(since);
  const lvl = since ? level(secs, target) : "ok";
  const pct = since ? Math.min(100, (100 * secs) / target) : 0;
  return h("div", { class: `meter lvl-${lvl} js-meter`, dataset: { since: since || "", target } },
    h("span", { class: "meter-text" }, h("span", { class: "js-meter-text" }, since ? stopwatch(secs) : "–"), h("small", {}, ` / ${minutes(target)}`)),
    h("span", { class: "meter-bar" }, h("i", { style: `width:${pct.toFixed(1)}%` })));
}

function servicesPanel(snap) {
  const agencies = Object.fromEntries(snap.agencies.map((a) => [a.id, a.name]));
  const rows = snap.services.map((s) => {
    const unstaffed = s.waiting > 0 && s.open_counters === 0;
    return h("tr", { dataset: { service: s.code }, class: unstaffed ? "row-alert" : null },
      h("td", {}, h("div", { class: "svc-name", title: agencies[s.agency] || s.agency }, h("span", { class: "prefix" }, s.prefix),
        h("div", {}, h("b", {}, pick(s.name))))),
      h("td", { class: "num js-waiting" }, h("b", {}, s.waiting), s.priority_waiting ? h("small", { class: "muted" }, ` (${s.priority_waiting} P)`) : null),
      h("td", {}, meter(s.oldest_enqueued_at, s.target_wait_seconds)),
      h("td", { class: "num" }, s.waiting ? minutes(s.estimated_wait_seconds) : "–"),
      h("td", { class: "num js-within" }, sharePercent(s.within_standard_share),
        s.called_today + s.waiting_over_target
          ? h("small", { class: "muted" }, ` ${s.called_within_target_today}/${s.called_today + s.waiting_over_target}`)
          : null),
      h("td", { class: `num js-open ${unstaffed ? "lvl-bad" : ""}` }, h("b", {}, s.open_counters)));
  });
  return h("section", { class: "card", "aria-labelledby": "services-title" },
    h("div", { class: "panel-head" }, h("h2", { id: "services-title" }, t("board.services")),
      h("div", { class: "legend" },
        h("span", {}, h("i", { class: "dot", style: "background:var(--ok)" }), t("board.legend.ok")),
        h("span", {}, h("i", { style: "background:var(--warn-line)" }), t("board.legend.warn")),
        h("span", {}, h("i", { style: "background:var(--bad)" }), t("board.legend.bad")))),
    h("div", { class: "panel-body" }, h("table", { class: "grid", id: "services" },
      h("thead", {}, h("tr", {},
        h("th", {}, t("board.col.service")), h("th", { class: "num" }, t("board.col.waiting")),
        h("th", {}, t("board.col.oldest")), h("th", { class: "num" }, t("board.col.estimate")),
        h("th", { class: "num" }, t("board.col.within")), h("th", { class: "num" }, t("board.col.counters")))),
      h("tbody", {}, rows))));
}

const BOOKING_FIGURES = ["due", "checked_in", "waiting", "missed", "cancelled"];

/** Today's bookings of each service that takes them (`bookings`: the snapshot's counts by
 *  service), in the services' order: still to come, checked in, their tickets waiting
 *  now, missed, cancelled. Counts only: nothing personal. */
function bookingsPanel(snap, bookings) {
  const rows = snap.services.filter((s) => bookings[s.code]).map((s) => {
    const counts = bookings[s.code];
    return h("tr", { dataset: { service: s.code } },
      h("td", {}, h("div", { class: "svc-name" }, h("span", { class: "prefix" }, s.prefix), h("div", {}, h("b", {}, pick(s.name))))),
      BOOKING_FIGURES.map((key) => h("td", { class: `num bk-${key.replace("_", "-")}${counts[key] ? "" : " bk-zero"}` }, counts[key])));
  });
  const due = Object.values(bookings).reduce((n, c) => n + c.due, 0);
  return h("section", { class: "card bookings-card", "aria-labelledby": "bookings-title" },
    h("div", { class: "panel-head" }, h("h2", { id: "bookings-title" }, t("bk.title")),
      h("span", { class: "muted", id: "bookings-due" }, t("bk.total", { n: due }))),
    h("div", { class: "panel-body" }, h("table", { class: "grid", id: "bookings" },
      h("thead", {}, h("tr", {}, h("th", {}, t("board.col.service")),
        BOOKING_FIGURES.map((key) => h("th", { class: "num", title: t(`bk.${key}.title`) }, t(`bk.${key}`))))),
      h("tbody", {}, rows))));
}

function counterCard(c) {
  const held = c.ticket;
  let cls = `s-${c.state}`;
  if (held) cls = "s-busy";
  if (c.idle_while_queue_waits && c.state === "open") cls += " idle-alert";
  let meta;
  if (held) {
    const since = held.started_at || held.called_at;
    meta = [h("span", { class: "js-since", dataset: { since } }, stopwatch(clock.secondsSince(since)))];
  } else if (c.state === "paused") {
    meta = [c.reason || t("cstate.paused")];
  } else if (c.idle_while_queue_waits && c.state === "open") {
    meta = [t("board.ctr.idle"), " ", h("span", { class: "js-since", dataset: { since: c.idle_since } }, stopwatch(clock.secondsSince(c.idle_since)))];
  } else {
    meta = [t("board.ctr.served", { n: c.served_today })];
  }
  const stateText = held ? (held.state === "called" ? t("state.called") : t("cstate.busy")) : t(`cstate.${c.state}`);
  return h("div", { class: `ctr ${cls}`, dataset: { counter: c.id }, title: c.services.join(", ") },
    h("div", { class: "ctr-top" }, h("span", { class: "ctr-name" }, c.name), h("span", { class: "ctr-state" }, stateText)),
    h("span", { class: "ctr-ticket" }, held ? held.number : "—"),
    h("span", { class: "ctr-meta" }, ...meta, held ? ` · ${t("board.ctr.served", { n: c.served_today })}` : ""));
}

function countersPanel(snap) {
  const zones = new Map();
  for (const c of snap.counters) {
    const zone = c.zone || "";
    if (!zones.has(zone)) zones.set(zone, []);
    zones.get(zone).push(c);
  }
  const blocks = [...zones.entries()].map(([zone, list]) => [
    zone ? h("h3", { class: "zone-title" }, t("board.zone", { z: zone })) : null,
    h("div", { class: "counter-grid" }, list.map(counterCard)),
  ]);
  return h("section", { class: "card", "aria-labelledby": "counters-title" },
    h("div", { class: "panel-head" }, h("h2", { id: "counters-title" }, t("board.counters"))),
    h("div", { class: "panel-body", id: "counters" }, blocks));
}

function flagPills(device) {
  const flags = [];
  const printer = device.printer;
  if (printer && typeof printer === "object") {
    const unknown = Array.isArray(printer.unknown) ? printer.unknown : [];
    for (const [name, value] of Object.entries(printer)) {
      if (name === "unknown" || name === "status") continue;
      if (value === true) flags.push(h("span", { class: "pill pill-warn" }, name.replace(/_/g, " ")));
    }
    // A flag no status reply has decided is shown as unknown, never as fine.
    for (const name of unknown) {
      flags.push(h("span", { class: "pill", title: t("board.dev.unknown") }, `${String(name).replace(/_/g, " ")} ?`));
    }
    if (!flags.length && (printer.status === undefined || printer.status === "ok")) {
      flags.push(h("span", { class: "pill pill-ok" }, "OK"));
    }
  }
  return flags.length ? flags : "–";
}

function devicesPanel(snap) {
  const devices = Array.isArray(snap.devices) ? snap.devices : [];
  const body = devices.length
    ? h("table", { class: "grid devices", id: "devices" },
      h("thead", {}, h("tr", {}, h("th", {}, t("board.dev.id")), h("th", {}, t("board.dev.kind")),
        h("th", {}, t("board.dev.state")), h("th", {}, t("board.dev.connected")), h("th", {}, t("board.dev.printer")))),
      h("tbody", {}, devices.map((d) => h("tr", { dataset: { device: d.id } },
        h("td", { title: d.last_error || null }, h("b", {}, d.id)), h("td", {}, d.kind || "–"), h("td", {}, d.state ? String(d.state).replace(/_/g, " ") : "–"),
        h("td", {}, h("span", { class: `pill ${d.connected ? "pill-ok" : "pill-bad"}` }, d.connected ? t("board.dev.yes") : t("board.dev.no"))),
        h("td", {}, flagPills(d))))))
    : h("p", { class: "devices-empty", id: "devices" }, t("board.devices.none"));
  return h("section", { class: "card", "aria-labelledby": "devices-title" },
    h("div", { class: "panel-head" }, h("h2", { id: "devices-title" }, t("board.devices"))), body);
}

function tick() {
  $("#clock").textContent = formatClock(clock.now(), tz());
  tickDurations(clock);
  for (const el of document.querySelectorAll(".js-meter")) {
    if (!el.dataset.since) continue;
    const secs = clock.secondsSince(el.dataset.since);
    const target = Number(el.dataset.target);
    el.className = `meter lvl-${level(secs, target)} js-meter`;
    el.querySelector(".js-meter-text").textContent = stopwatch(secs);
    el.querySelector("i").style.width = `${Math.min(100, (100 * secs) / target).toFixed(1)}%`;
  }
}

function signin() {
  return signinForm({
    title: t("board.signin.title"),
    error: state.error,
    fields: field("token", t("board.token"), tokenInput()),
    submit: t("common.signin"),
    onSubmit: (form) => {
      token.set(form.token.value.trim());
      state.error = null;
      start();
    },
  });
}

function render() {
  if (!token.value) { fill(content, signin()); return; }
  const snap = state.snap;
  if (!snap) { fill(content, h("p", { class: "signin muted" }, t("common.loading"))); return; }
  $("#site-name").textContent = snap.name;
  const hall = $("#hall-state");
  hall.className = `pill ${snap.open ? (snap.break ? "pill-warn" : "pill-ok") : "pill-bad"}`;
  hall.textContent = snap.break ? `${snap.break.label} – ${snap.break.until}` : snap.open ? t("board.open") : t("board.closed");
  const scroll = [...document.querySelectorAll(".panel-body")].map((el) => el.scrollTop);
  // Today's bookings under the services, in a hall where some service takes bookings.
  const bookings = snap.bookings && Object.keys(snap.bookings).length ? snap.bookings : null;
  fill(content,
    kpis(snap),
    h("div", { class: "board-main" },
      bookings ? h("div", { class: "left-stack" }, servicesPanel(snap), bookingsPanel(snap, bookings)) : servicesPanel(snap),
      h("div", { class: "right-stack" }, countersPanel(snap), devicesPanel(snap))));
  document.querySelectorAll(".panel-body").forEach((el, i) => { el.scrollTop = scroll[i] || 0; });
  refreshAtNextCrossing(snap);
  tick();
}

function start() {
  render();
  load().catch(() => {});
  if (live) live.stop();
  live = followSite(site, token, refresh, () => state.snap);
}

apply();
mountToggle($("#lang"));
onLangChange(render);
setInterval(tick, 1000);
// Figures that move with the clock alone (idle since, counters' day totals) stay fresh.
setInterval(() => refresh(), 30000);
if (token.value) start(); else render();
