// The ticket kiosk: agency -> service -> priority -> one touch gives one ticket.
//
// URL: kiosk.html?site=<site>&token=<kiosk token>[&idle=<seconds>]. A kiosk is provisioned
// once: site, token and idle time are kept in localStorage and the token is taken out of
// the address bar. Each issuing touch makes one Idempotency-Key and every retry of that
// touch reuses it, so a dropped connection never gives the citizen two numbers. The clock
// in the header is the server's (the directory's `now` plus the time since it was read,
// re-read every minute) in the site's timezone: a kiosk's own clock drifts.
//
// Check-in ("Sudah punya kode booking?"): where the site takes bookings (its public
// /online lists a service), the start screen offers a code field, for a booking's code or
// a remote join's. A 2D barcode scanner reading the booking's QR code types the code and
// Enter: a key typed on the start screen opens the field with that key in it, and the
// field keeps the focus, so a scan needs no touch at all. An on-screen keypad types it by hand.
// The check-in's ticket is then shown (and printed) as an issued ticket is.

import { api, newKey, siteUrl, ticketUrl } from "./api.js";
import { apply, errorText, mountToggle, onLangChange, pick, setLang, t } from "./i18n.js";
import { Live, refresher } from "./live.js";
import { field, signinForm, tokenInput } from "./signin.js";
import { $, ServerClock, dropParam, fill, formatClock, h, icon, markReady, minutes, opensAgain, params, store, timeOf } from "./ui.js";

const local = store("local");
const query = params();
for (const name of ["site", "token", "idle"]) {
  if (query[name]) local.set(`antrian.kiosk.${name}`, query[name]);
}
dropParam("token");

const state = {
  site: local.get("antrian.kiosk.site"),
  token: local.get("antrian.kiosk.token"),
  idleSeconds: Math.max(5, Number(local.get("antrian.kiosk.idle")) || 20),
  directory: null,
  screen: "agencies",
  agency: null,
  service: null,
  ticket: null,
  error: null,
  busy: false,
  offline: false,
  idleAt: 0,
  checkIn: false, // the site checks in bookings or remote joins at the kiosk
  checkInKnown: false, // ... as its /online said
  code: "", // the code being typed or scanned
  booking: null, // the booking of the ticket just checked in
};

const screen = $("#screen");
const clock = new ServerClock();

// -- idle: back to the start after a while without a touch --------------------------------

function touch() { state.idleAt = Date.now() + state.idleSeconds * 1000; }

// A refused check-in says why and, for too_early, when to come back: it stays up at least
// this long, whatever the kiosk's idle time.
const CHECKIN_ERROR_SECONDS = 30;

function idleTick() {
  if (state.busy || state.screen === "agencies" || state.screen === "setup") return;
  const left = Math.ceil((state.idleAt - Date.now()) / 1000);
  const counter = $("#countdown");
  if (counter) counter.textContent = t("kiosk.countdown", { n: Math.max(0, left) });
  if (left <= 0) reset();
}

function reset() {
  Object.assign(state, { screen: "agencies", agency: null, service: null, ticket: null, error: null, code: "", booking: null });
  setLang("id");
  refresh(true);
  render();
}

for (const type of ["pointerdown", "keydown"]) document.addEventListener(type, touch, { capture: true });

// A scanner types into whatever has the focus: on the start screen, its first key opens
// the check-in field (which takes the focus, and so the rest of the code); on the check-in
// screen, a key typed while a touch took the focus elsewhere brings it back to the field.
document.addEventListener("keydown", (event) => {
  if (!state.checkIn || state.busy || event.ctrlKey || event.altKey || event.metaKey) return;
  if (!/^[0-9a-z]$/i.test(event.key)) return;
  if (state.screen === "agencies") {
    event.preventDefault();
    openCheckIn(event.key.toUpperCase());
  } else if (state.screen === "checkin") {
    const input = $("#checkin-code");
    if (input && document.activeElement !== input) input.focus();
  }
});

// -- data ---------------------------------------------------------------------------------

async function load() {
  try {
    state.directory = await api(siteUrl(state.site));
    clock.sync(state.directory.now);
    tickClock();
    state.offline = false;
  } catch (exc) {
    if (exc.name === "ApiError" && exc.code === "unknown_site") {
      local.remove("antrian.kiosk.site");
      state.site = null;
      state.screen = "setup";
    } else {
      state.offline = true;
    }
  }
  if (["agencies", "services", "setup"].includes(state.screen)) render();
  if (state.directory) markReady();
}

/** Whether this site checks bookings in at the kiosk (its public /online, read at the
 *  start, and each minute until one read succeeded). */
async function loadCheckIn() {
  try {
    const online = await api(siteUrl(state.site, "/online"));
    state.checkIn = online.services.length > 0; // each takes bookings
    state.checkInKnown = true;
  } catch {
    state.checkIn = false; // offline for now: issuing goes on, check-in comes once read
  }
  if (state.screen === "agencies") render();
}

const refresh = refresher(load, 800);

const services = () => (state.directory ? state.directory.services : []);
const serviceOf = (code) => services().find((s) => s.code === code);

function reasonText(service) {
  if (service.accepting) return null;
  return t(`reason.${service.not_accepting_reason || "closed"}`, { time: service.cutoff || "" });
}

// -- screens ------------------------------------------------------------------------------

function head(title, text, back) {
  return h("div", { class: "kiosk-head" },
    back ? h("button", { class: "btn btn-lg", type: "button", onclick: back, "aria-label": t("common.back") }, icon("back"), t("common.back")) : null,
    h("div", {}, h("h1", {}, title), text ? h("p", {}, text) : null));
}

function banners() {
  const d = state.directory;
  const out = [];
  if (state.offline) out.push(h("div", { class: "alert alert-warn kiosk-banner", role: "status" }, t("kiosk.offline")));
  if (d && !d.open) out.push(closedBanner(d));
  else if (d && d.break) out.push(h("div", { class: "alert alert-info kiosk-banner", role: "status" }, t("kiosk.break", d.break)));
  return out;
}

// Closed: when the hall opens again ("Buka kembali Senin, 08:00 WITA"), from the directory's
// `next_opening`, against the server's day (the directory is re-read every minute).
function closedBanner(d) {
  const again = opensAgain(d.next_opening, d.timezone, clock.now());
  return h("div", { class: "alert alert-bad kiosk-banner", role: "status", id: "closed-banner" },
    again
      ? h("div", {}, h("span", {}, t("kiosk.closed.now")), h("strong", { class: "opens-again" }, again))
      : t("kiosk.closed"));
}

// A refusal that says when tickets are issued again (`details.opens_at`): the hall's next
// opening for `site_closed`, the next day issuing the service's tickets otherwise.
function refusalAgain(error) {
  const at = error && error.name === "ApiError" && error.details ? error.details.opens_at : null;
  if (!at) return null;
  const tz = state.directory ? state.directory.timezone : undefined;
  return opensAgain(at, tz, clock.now(), error.code === "site_closed" ? "open.again" : "open.issue_again");
}

function agenciesScreen() {
  const d = state.directory;
  if (!d) return [head(t("kiosk.agencies.title"), t("common.loading")), ...banners()];
  const tiles = d.agencies.map((agency) => {
    const own = services().filter((s) => s.agency === agency.id);
    if (!own.length) return null;
    const accepting = own.some((s) => s.accepting);
    const waiting = own.reduce((sum, s) => sum + s.waiting, 0);
    return h("button", {
      class: "tile", type: "button", disabled: !accepting, dataset: { agency: agency.id },
      onclick: () => { state.agency = agency.id; state.screen = "services"; render(); },
    },
    h("div", { class: "tile-row" },
      h("span", { class: "agency-mark" }, icon("building")),
      h("div", { class: "tile-body" },
        h("span", { class: "tile-title" }, agency.name),
        h("div", { class: "tile-meta" },
          h("span", { class: "stat" }, t("kiosk.services.count", { n: own.length })),
          accepting ? h("span", { class: "stat" }, t("kiosk.waiting", { n: waiting }))
            : h("span", { class: "stat stat-closed" }, t("kiosk.unavailable"))))));
  });
  return [
    head(t("kiosk.agencies.title"), t("kiosk.agencies.text")),
    ...banners(),
    state.checkIn ? h("button", { class: "tile checkin-tile", type: "button", id: "checkin-open", onclick: () => openCheckIn("") },
      icon("ticket"), h("span", { class: "tile-title" }, t("kiosk.checkin.open"), h("br"), h("small", {}, t("kiosk.checkin.open.sub")))) : null,
    h("div", { class: "kiosk-scroll" }, h("div", { class: "kiosk-grid" }, tiles)),
    h("div", { class: "kiosk-foot" }, h("span", {}, t("kiosk.help"))),
  ];
}

function serviceTile(service, onclick) {
  const reason = reasonText(service);
  const meta = reason
    ? [h("span", { class: "stat stat-closed" }, reason)]
    : [
      h("span", { class: "stat" }, service.waiting ? t("kiosk.waiting", { n: service.waiting }) : t("kiosk.no_queue")),
      service.waiting && service.estimated_wait_seconds !== null
        ? h("span", { class: "stat" }, t("kiosk.estimate", { d: minutes(service.estimated_wait_seconds) })) : null,
    ];
  return h("button", { class: "tile", type: "button", disabled: !!reason, onclick, dataset: { service: service.code } },
    h("div", { class: "tile-row" },
      h("span", { class: "prefix", "aria-hidden": "true" }, service.prefix),
      h("div", { class: "tile-body" },
        h("span", { class: "tile-title" }, pick(service.name)),
        h("div", { class: "tile-meta" }, meta))));
}

function servicesScreen() {
  const agency = state.directory.agencies.find((a) => a.id === state.agency);
  const own = services().filter((s) => s.agency === state.agency);
  return [
    head(agency ? agency.name : "", t("kiosk.services.text"), () => { state.screen = "agencies"; render(); }),
    ...banners(),
    h("div", { class: "kiosk-scroll" }, h("div", { class: "kiosk-grid services" },
      own.map((s) => serviceTile(s, () => { state.service = s.code; state.screen = "priority"; render(); })))),
    h("div", { class: "kiosk-foot" }, h("span", {}, t("kiosk.help"))),
  ];
}

function priorityScreen() {
  const service = serviceOf(state.service);
  const option = (kind, iconName, title, sub, cls = "") => h("button", {
    class: `tile ${cls}`, type: "button", dataset: { priority: kind || "none" },
    onclick: () => take(kind),
  }, icon(iconName), h("span", { class: "tile-title" }, title, h("br"), h("small", {}, sub)));
  return [
    head(t("kiosk.priority.title"), t("kiosk.priority.text"), () => { state.screen = "services"; render(); }),
    service ? h("div", { class: "card chosen-service" },
      h("span", { class: "prefix" }, service.prefix), h("b", {}, pick(service.name))) : null,
    h("div", { class: "priority-grid" },
      option(null, "ticket", t("kiosk.priority.none"), t("kiosk.priority.none.sub"), "tile-none"),
      option("lansia", "elderly", t("priority.lansia"), t("kiosk.priority.lansia.sub")),
      option("disabilitas", "wheelchair", t("priority.disabilitas"), t("kiosk.priority.disabilitas.sub")),
      option("ibu_hamil", "pregnant", t("priority.ibu_hamil"), t("kiosk.priority.ibu_hamil.sub"))),
  ];
}

// -- check-in -----------------------------------------------------------------------------

const KEYS = "1234567890ABCDEFGHIJKLMNOPQRSTUVWXYZ";

function openCheckIn(first) {
  Object.assign(state, { screen: "checkin", code: first, error: null });
  render();
}

/** When a check-in refused as too early may be made ("Check-in dibuka hari ini, pukul
 *  08:30 WITA"), from the refusal's `details.opens_at`; null for other refusals. */
function checkInOpens(error) {
  const at = error && error.name === "ApiError" && error.code === "too_early" && error.details ? error.details.opens_at : null;
  if (!at) return null;
  return opensAgain(at, state.directory ? state.directory.timezone : undefined, clock.now(), "kiosk.checkin.opens");
}

function checkInScreen() {
  const input = h("input", {
    id: "checkin-code", name: "code", value: state.code, autocomplete: "off", autocapitalize: "characters",
    spellcheck: "false", maxlength: 24, required: true, "aria-label": t("kiosk.checkin.code"),
  });
  input.addEventListener("input", () => { state.code = input.value.toUpperCase(); });
  const type = (fn) => () => {
    state.code = fn(input.value.toUpperCase());
    input.value = state.code;
    input.focus();
  };
  // A key never takes the focus from the field, which keeps a scanner's keys.
  const key = (label, fn, cls = "") => h("button", {
    class: `btn ${cls}`, type: "button", dataset: { key: label }, onmousedown: (event) => event.preventDefault(), onclick: type(fn),
  }, label);
  const form = h("form", { class: "checkin-form", id: "checkin-form" },
    input,
    state.error ? h("div", { class: "alert alert-bad kiosk-banner", role: "alert", id: "checkin-error", dataset: { code: state.error.code || state.error.name } },
      h("div", {}, h("strong", {}, t("kiosk.checkin.error")), h("span", { class: "checkin-note" }, errorText(state.error)),
        checkInOpens(state.error) ? h("strong", { class: "opens-again", id: "checkin-opens" }, checkInOpens(state.error)) : null)) : null,
    h("div", { class: "keypad" },
      Array.from(KEYS, (ch) => key(ch, (v) => v + ch)),
      key("⌫", (v) => v.slice(0, -1), "key-wide"),
      key(t("kiosk.checkin.clear"), () => "", "key-wide"),
      h("button", { class: "btn btn-primary key-wide", type: "submit", id: "checkin-submit" }, t("kiosk.checkin.submit"))));
  form.addEventListener("submit", (event) => { event.preventDefault(); checkIn(); });
  // The caret after what is typed (a scan's first key is in already); after a refusal the
  // code stays, selected: the next scan or key replaces it.
  queueMicrotask(() => {
    input.focus();
    if (state.error) input.select();
    else input.setSelectionRange(input.value.length, input.value.length);
  });
  return [
    head(t("kiosk.checkin.title"), t("kiosk.checkin.text"), reset),
    form,
    h("p", { class: "countdown", id: "countdown" }),
  ];
}

async function checkIn() {
  const code = state.code.replace(/\s+/g, "").toUpperCase();
  if (state.busy || !code) return;
  state.busy = true;
  $("#busy-text").textContent = t("kiosk.checkin.busy");
  $("#busy").hidden = false;
  try {
    const answer = await api(siteUrl(state.site, "/check-in"), {
      method: "POST", body: { code }, token: state.token, key: newKey(), attempts: 6, timeoutMs: ISSUE_TIMEOUT_MS,
    });
    Object.assign(state, { ticket: answer.ticket, booking: answer.booking, screen: "confirm", error: null, code: "" });
    touch();
  } catch (exc) {
    state.error = exc;
    if (exc.name === "ApiError" && exc.code === "invalid_token") {
      local.remove("antrian.kiosk.token");
      state.token = null;
    }
    state.idleAt = Date.now() + Math.max(state.idleSeconds, CHECKIN_ERROR_SECONDS) * 1000;
  } finally {
    state.busy = false;
    $("#busy").hidden = true;
    $("#busy-text").textContent = t("kiosk.issuing");
    render();
    refresh();
  }
}

function printNote(ticket) {
  const p = ticket.print;
  if (!p) return { kind: "info", text: t("kiosk.print.offer"), offer: true };
  if (p.status === "printed") return { kind: "ok", text: t("kiosk.print.printed"), offer: false };
  if (p.status === "failed") return { kind: "warn", text: t("kiosk.print.failed"), detail: p.message, offer: true };
  // Written to the printer, which did not confirm it: never sent twice by the service.
  if (p.status === "unconfirmed") return { kind: "warn", text: t("kiosk.print.unconfirmed"), detail: p.message, offer: true };
  return { kind: "info", text: t("kiosk.print.no_printer"), offer: true };
}

function confirmScreen() {
  const tk = state.ticket;
  const note = printNote(tk);
  const qr = ticketUrl(tk.id, "/qr.svg");
  renderPrintable(tk, qr);
  return [
    h("div", { class: "confirm" },
      h("section", { class: "card ticket-card", "aria-labelledby": "ticket-number" },
        h("span", { class: "ticket-label" }, t("kiosk.confirm.label")),
        h("span", { class: "ticket-number", id: "ticket-number", dataset: { ticketId: tk.id } }, tk.number),
        h("span", { class: "ticket-service" }, pick(tk.service_name)),
        tk.priority ? h("span", { class: "pill pill-info" }, t(`priority.${tk.priority}`)) : null,
        state.booking ? h("span", { class: "pill pill-info", id: "checked-in-booking" },
          t("kiosk.checkin.booked", { code: state.booking.code, slot: `${state.booking.slot}–${state.booking.slot_end}` })) : null,
        h("div", { class: "ticket-facts" },
          h("div", { class: "fact" }, h("b", { id: "people-ahead" }, tk.people_ahead), h("span", {}, t("kiosk.confirm.ahead"))),
          h("div", { class: "fact" }, h("b", {}, minutes(tk.estimated_wait_seconds)), h("span", {}, t("kiosk.confirm.estimate")))),
        h("div", { class: "ticket-qr" },
          h("img", { src: qr, alt: t("kiosk.confirm.qr.alt"), width: 200, height: 200 }),
          h("p", {}, t("kiosk.confirm.qr")))),
      h("div", { class: "confirm-side" },
        h("section", { class: "card next-steps", "aria-labelledby": "next-title" },
          h("h2", { id: "next-title" }, t("kiosk.next.title")),
          h("ol", {}, h("li", {}, t("kiosk.next.1")), h("li", {}, t("kiosk.next.2")), h("li", {}, t("kiosk.next.3")))),
        h("div", { class: `alert alert-${note.kind} kiosk-banner`, id: "print-status", role: "status", dataset: { print: tk.print ? tk.print.status : "none" } }, h("div", {}, h("strong", {}, note.text), note.detail ? h("small", { class: "muted" }, note.detail) : null)),
        h("div", { class: "confirm-actions" },
          note.offer ? h("button", { class: "btn btn-lg", type: "button", onclick: () => window.print() }, icon("printer"), t("kiosk.print")) : null,
          h("button", { class: "btn btn-lg btn-primary", type: "button", onclick: reset }, icon("check"), t("kiosk.done"))),
        h("p", { class: "countdown", id: "countdown" }, t("kiosk.countdown", { n: state.idleSeconds })))),
  ];
}

function renderPrintable(tk, qr) {
  const tz = tk.timezone || (state.directory ? state.directory.timezone : undefined);
  fill($("#print-ticket"),
    h("h1", {}, tk.site_name),
    h("hr"),
    h("div", { class: "p-number" }, tk.number),
    h("div", { class: "p-service" }, pick(tk.service_name)),
    h("p", {}, t("print.ahead", { n: tk.people_ahead })),
    h("p", {}, t("print.issued", { time: timeOf(tk.issued_at, tz) })),
    h("hr"),
    h("p", {}, t("print.keep")),
    h("img", { src: qr, alt: "" }));
}

function errorScreen() {
  return [
    head(t("kiosk.error.title"), null, () => { state.screen = "services"; render(); }),
    h("div", { class: "alert alert-bad kiosk-banner", role: "alert", id: "kiosk-error" },
      h("div", {}, h("strong", {}, errorText(state.error)),
        refusalAgain(state.error) ? h("strong", { class: "opens-again" }, refusalAgain(state.error)) : null,
        state.error && state.error.message && state.error.name === "ApiError" ? h("span", { class: "muted" }, state.error.message) : null)),
    h("div", { class: "confirm-actions" },
      h("button", { class: "btn btn-lg btn-primary", type: "button", onclick: reset }, t("kiosk.done"))),
    h("p", { class: "countdown", id: "countdown" }),
  ];
}

async function setupScreen() {
  let sites = [];
  try { sites = (await api("/api/v1/sites")).sites; } catch { /* offline: type the id */ }
  const siteField = sites.length
    ? h("select", { id: "setup-site", name: "site", required: true },
      sites.map((s) => h("option", { value: s.id, selected: s.id === state.site }, s.name)))
    : h("input", { id: "setup-site", name: "site", required: true, value: state.site || "" });
  return [signinForm({
    title: t("kiosk.setup.title"),
    text: t("kiosk.setup.text"),
    fields: [
      field("setup-site", t("common.site"), siteField),
      field("setup-token", t("kiosk.setup.token"), tokenInput("setup-token", "off")),
    ],
    submit: t("kiosk.setup.save"),
    onSubmit: (form) => {
      state.site = form.site.value.trim();
      state.token = form.token.value.trim();
      local.set("antrian.kiosk.site", state.site);
      local.set("antrian.kiosk.token", state.token);
      start();
    },
  })];
}

async function render() {
  if (state.screen === "setup") { fill(screen, ...(await setupScreen())); return; }
  if (state.directory) $("#site-name").textContent = state.directory.name;
  const build = { agencies: agenciesScreen, services: servicesScreen, priority: priorityScreen, confirm: confirmScreen, error: errorScreen, checkin: checkInScreen }[state.screen];
  fill(screen, ...build());
  document.body.dataset.screen = state.screen;
}

// -- issuing ------------------------------------------------------------------------------

// The server answers once the ticket is committed (up to 5 s) AND printed on this kiosk's
// printer (up to 8 s: waiting for the printer, its status, the ticket, its status again).
// Give up on an answer only well after that: a retry sent while the first request is still
// printing is answered by that same print, but costs the citizen the time of both.
const ISSUE_TIMEOUT_MS = 20000;

async function take(priority) {
  if (state.busy) return; // one touch, one ticket: further touches wait for the answer
  state.busy = true;
  const key = newKey();
  $("#busy").hidden = false;
  const body = { service: state.service };
  if (priority) body.priority = priority;
  try {
    state.ticket = await api(siteUrl(state.site, "/tickets"), { method: "POST", body, token: state.token, key, attempts: 6, timeoutMs: ISSUE_TIMEOUT_MS });
    state.screen = "confirm";
  } catch (exc) {
    state.error = exc;
    state.screen = "error";
    if (exc.name === "ApiError" && exc.code === "invalid_token") {
      local.remove("antrian.kiosk.token");
      state.token = null;
    }
  } finally {
    state.busy = false;
    $("#busy").hidden = true;
    touch();
    render();
    refresh();
  }
}

// -- start --------------------------------------------------------------------------------

function tickClock() {
  const tz = state.directory ? state.directory.timezone : undefined;
  $("#clock").textContent = formatClock(clock.now(), tz);
}

let live = null;

function start() {
  if (!state.site || !state.token) { state.screen = "setup"; render(); return; }
  state.screen = "agencies";
  render();
  load();
  state.checkInKnown = false;
  loadCheckIn();
  if (live) live.stop();
  live = new Live({ site: state.site, onEvent: () => refresh(), onResync: () => refresh() }).start();
}

apply();
mountToggle($("#lang"));
onLangChange(() => { if (state.screen !== "setup") render(); });
touch();
setInterval(idleTick, 1000);
setInterval(tickClock, 1000);
setInterval(() => {
  refresh(); // cut-off times and closing come with the clock, not events
  if (!state.checkInKnown && state.site) loadCheckIn();
}, 60000);
tickClock();
start();
