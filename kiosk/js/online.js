// Antrian online on the citizen's phone: online.html?site=<site>[#booking=<id>].
//
// Book a time: service (with the requirements the hall configures) → day → slot → an
// optional phone number → book; the answer is the booking card (code in large type, its
// QR code, service, day, slot, check-in window, requirements), which can be cancelled or
// moved to another slot. Or, where a service allows it, join today's queue from the phone
// ("Antri sekarang") and follow the ticket on status.html.
//
// No account: the booking id is the capability. It is kept in the fragment (#booking=<id>:
// never sent to a server nor in a Referer) and in this phone's localStorage, so reopening
// the page shows the booking. The phone number is sent with the booking and kept nowhere
// on the page. Each booking, move or join is one attempt with one Idempotency-Key, reused
// by every retry of it (a lost answer never books twice); changing the choice starts a
// new attempt. A booking still to be checked in is re-read now and then, so that after
// the check-in at the kiosk the card links to the ticket's status page.

import { api, newKey, siteUrl } from "./api.js";
import { apply, errorText, lang, mountToggle, onLangChange, pick, t } from "./i18n.js";
import { keepJoinCode } from "./joins.js";
import { $, fill, h, markReady, params, store, timeOf, toast } from "./ui.js";

const local = store("local");
const KEPT = "antrian.online.bookings"; // [{id, code, day, slot}] on this phone, newest first
const KEEP_MAX = 6;

const main = $("#main");
const state = {
  site: null, // the site's id
  online: null, // its GET /online
  step: "services", // services | days | slots | confirm | join | joined | booking
  service: null, // the chosen service's code
  day: null, // "YYYY-MM-DD"
  slots: null, // GET /online/slots for (service, day)
  slot: null, // "HH:MM"
  phone: "",
  booking: null, // the booking shown (step "booking") or being moved
  moving: false, // choosing a new day and slot for `booking`
  joined: null, // the join's answer (a TicketStatus with its `code`)
  key: null, // the current attempt's Idempotency-Key
  busy: false,
  error: null, // the last refusal, shown on the current step
};

const bookingUrl = (id, rest = "") => `/api/v1/bookings/${encodeURIComponent(id)}${rest}`;

// -- kept bookings ------------------------------------------------------------------------

function kept() {
  try {
    const list = JSON.parse(local.get(KEPT) || "[]");
    return Array.isArray(list) ? list.filter((b) => b && typeof b.id === "string") : [];
  } catch {
    return [];
  }
}

function keep(booking) {
  const entry = { id: booking.id, code: booking.code, day: booking.day, slot: booking.slot, state: booking.state };
  const rest = kept().filter((b) => b.id !== booking.id);
  local.set(KEPT, JSON.stringify([entry, ...rest].slice(0, KEEP_MAX)));
}

function bookingFromHash() {
  const m = /^#booking=([^&]+)/.exec(location.hash);
  if (!m) return null;
  try { return decodeURIComponent(m[1]).trim() || null; } catch { return null; }
}

function showBookingInUrl(id) {
  history.replaceState(null, "", `${location.pathname}${location.search}#booking=${encodeURIComponent(id)}`);
}

// -- data ---------------------------------------------------------------------------------

async function chooseSite(preferred) {
  if (preferred) return preferred;
  const saved = local.get("antrian.site");
  const { sites } = await api("/api/v1/sites");
  return (sites.find((s) => s.id === saved) || sites[0] || {}).id || null;
}

async function loadSite(site) {
  if (state.online && state.site === site) return;
  state.online = await api(siteUrl(site, "/online"));
  state.site = site;
  $("#site-name").textContent = state.online.name;
  const url = new URL(location.href);
  if (url.searchParams.get("site") !== site) {
    url.searchParams.set("site", site);
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
}

async function loadSlots() {
  state.slots = null;
  render();
  const query = `?service=${encodeURIComponent(state.service)}&day=${encodeURIComponent(state.day)}`;
  try {
    state.slots = await api(siteUrl(state.site, `/online/slots${query}`));
  } catch (exc) {
    state.error = exc;
  }
  render();
}

/** The page as the address says: a booking (#booking=<id>) or the start of a new one. */
async function openPage() {
  const id = bookingFromHash();
  state.error = null;
  try {
    if (id) {
      const booking = await api(bookingUrl(id));
      await loadSite(booking.site);
      showBooking(booking);
    } else {
      await loadSite(await chooseSite(params().site));
      state.step = "services";
    }
  } catch (exc) {
    state.error = exc;
    state.step = id ? "booking" : "services";
    state.booking = null;
  }
  render();
  markReady();
}

/** Re-read a booking still to be checked in (every 15 s while the page is seen, and when
 *  the phone shows it again): after the check-in at the kiosk it links to its ticket. */
async function refreshBooking() {
  const b = state.booking;
  if (state.step !== "booking" || !b || b.state !== "booked" || state.busy || document.hidden) return;
  let fresh;
  try {
    fresh = await api(bookingUrl(b.id));
  } catch {
    return; // shown as it was; read again at the next turn
  }
  if (state.step === "booking" && state.booking === b && !state.busy) {
    state.booking = fresh;
    keep(fresh);
    render();
  }
}

function showBooking(booking) {
  state.booking = booking;
  state.moving = false;
  state.step = "booking";
  keep(booking);
  showBookingInUrl(booking.id);
}

// -- formatting ---------------------------------------------------------------------------

const services = () => (state.online ? state.online.services : []);
const serviceOf = (code) => services().find((s) => s.code === code);
const nameOf = (s) => pick({ id: s.name_id, en: s.name_en });
const requirementsOf = (s) => pick({ id: s.requirements_id, en: s.requirements_en });
const tz = () => (state.online ? state.online.timezone : undefined);

/** "Rabu, 9 Desember 2026" for a calendar day "2026-12-09" (a date, not an instant). */
function formatDay(day, long = true) {
  const [y, m, d] = day.split("-").map(Number);
  const opts = long
    ? { weekday: "long", day: "numeric", month: "long", year: "numeric", timeZone: "UTC" }
    : { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" };
  return new Intl.DateTimeFormat(lang() === "en" ? "en-GB" : "id-ID", opts).format(Date.UTC(y, m - 1, d));
}

/** The calendar day `n` days after `day` ("YYYY-MM-DD" both). */
function addDays(day, n) {
  const [y, m, d] = day.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
}

// -- attempts -----------------------------------------------------------------------------

function attemptKey() {
  if (!state.key) state.key = newKey();
  return state.key;
}

/** Send one attempt (`call`); a refusal ends the attempt, a lost answer keeps its key. */
async function attempt(call) {
  if (state.busy) return;
  state.busy = true;
  state.error = null;
  render();
  try {
    await call(attemptKey());
    state.key = null;
  } catch (exc) {
    state.error = exc;
    if (exc.name === "ApiError") state.key = null;
    if (exc.name === "ApiError" && ["slot_full", "booking_closed"].includes(exc.code)) {
      state.step = "slots";
      state.slot = null;
      state.busy = false;
      await loadSlots();
      return;
    }
  } finally {
    state.busy = false;
  }
  render();
}

function go(step, changes = {}) {
  Object.assign(state, changes, { step, error: null, key: null });
  render();
}

function book() {
  return attempt(async (key) => {
    const body = { service: state.service, day: state.day, slot: state.slot };
    if (state.phone.trim()) body.phone = state.phone.trim(); // the server reads its forms
    const booking = await api(siteUrl(state.site, "/bookings"), { method: "POST", body, key });
    state.phone = "";
    showBooking(booking);
  });
}

function move() {
  const id = state.booking.id;
  return attempt(async (key) => {
    const booking = await api(bookingUrl(id, "/reschedule"), { method: "POST", body: { day: state.day, slot: state.slot }, key });
    showBooking(booking);
    toast(t("online.moved.toast"), "ok", 4000);
  });
}

function join() {
  return attempt(async (key) => {
    const body = { service: state.service };
    if (state.phone.trim()) body.phone = state.phone.trim(); // the server reads its forms
    const ticket = await api(siteUrl(state.site, "/join"), { method: "POST", body, key });
    state.phone = "";
    if (!ticket.code || ticket.confirmed !== false) {
      location.assign(`status.html#${encodeURIComponent(ticket.id)}`);
      return;
    }
    keepJoinCode(ticket.id, ticket.code);
    state.joined = ticket;
    state.step = "joined";
  });
}

function askCancel() {
  const dialog = $("#cancel-dialog");
  $("#cancel-title").textContent = t("online.cancel.title", { code: state.booking.code });
  dialog.returnValue = "";
  dialog.onclose = () => { if (dialog.returnValue === "yes") cancel(); };
  dialog.showModal();
}

function cancel() {
  const id = state.booking.id;
  return attempt(async (key) => {
    showBooking(await api(bookingUrl(id, "/cancel"), { method: "POST", body: {}, key }));
    toast(t("online.cancelled.toast"), "ok", 4000);
  });
}

// -- screens ------------------------------------------------------------------------------

function head(title, back) {
  return h("div", { class: "online-head" },
    back ? h("button", { class: "btn btn-ghost online-back", type: "button", onclick: back }, t("common.back")) : null,
    h("h1", {}, title));
}

function errorBox() {
  const exc = state.error;
  if (!exc) return null;
  return h("div", { class: "alert alert-bad", role: "alert", id: "online-error", dataset: { code: exc.code || exc.name } },
    h("div", {}, h("strong", {}, errorText(exc))));
}

function chosen(service) {
  const req = requirementsOf(service);
  return h("section", { class: "card online-chosen" },
    h("b", { class: "online-service-name" }, nameOf(service)),
    req ? h("details", { class: "online-req", open: true },
      h("summary", {}, t("online.requirements")), h("p", { id: "requirements" }, req)) : null);
}

function myBookings() {
  const list = kept();
  if (!list.length) return null;
  return h("section", { class: "card online-mine", "aria-labelledby": "mine-title" },
    h("h2", { id: "mine-title" }, t("online.mine")),
    h("ul", {}, list.map((b) => h("li", {},
      h("a", { href: `#booking=${encodeURIComponent(b.id)}`, dataset: { booking: b.id } },
        h("b", {}, b.code), " · ", b.day ? formatDay(b.day, false) : "", " ", b.slot || "",
        b.state && b.state !== "booked" ? h("span", { class: "pill" }, t(`online.state.${b.state}`)) : null)))));
}

function servicesScreen() {
  const list = services();
  return [
    head(t("online.services.title")),
    h("p", { class: "muted" }, t("online.services.text")),
    errorBox(),
    myBookings(),
    state.online && !list.length ? h("div", { class: "alert alert-info" }, t("online.services.none")) : null,
    h("div", { class: "online-services" }, list.map((s) => {
      const req = requirementsOf(s);
      return h("section", { class: "card online-service", dataset: { service: s.code } },
        h("b", { class: "online-service-name" }, nameOf(s)),
        req ? h("details", { class: "online-req" }, h("summary", {}, t("online.requirements")), h("p", {}, req)) : null,
        h("div", { class: "online-actions" },
          h("button", { class: "btn btn-primary", type: "button", dataset: { action: "book" },
            onclick: () => go("days", { service: s.code, day: null, slot: null, moving: false, booking: null }) }, t("online.book")),
          s.remote_join ? h("button", { class: "btn btn-accent", type: "button", dataset: { action: "join" }, disabled: !s.remote_join_open,
            onclick: () => go("join", { service: s.code }) }, t("online.join")) : null),
        s.remote_join && !s.remote_join_open ? h("small", { class: "muted" }, t("online.join.closed")) : null);
    })),
  ];
}

function backToStart() {
  if (state.moving && state.booking) { go("booking", { moving: false }); return; }
  history.replaceState(null, "", location.pathname + location.search);
  go("services", { booking: null, moving: false });
}

function daysScreen() {
  const service = serviceOf(state.service);
  const last = addDays(state.online.today, service.days_ahead);
  const days = state.online.days.filter((d) => d.day <= last);
  return [
    head(state.moving ? t("online.move.title") : t("online.day.title"), backToStart),
    chosen(service),
    errorBox(),
    h("div", { class: "online-days" }, days.map((d) => h("button", {
      class: `btn online-day${d.day === state.day ? " is-chosen" : ""}`, type: "button", disabled: !d.open, dataset: { day: d.day },
      onclick: () => { go("slots", { day: d.day, slot: null }); loadSlots(); },
    }, h("span", {}, formatDay(d.day, false)), d.open ? null : h("small", {}, t("online.day.closed"))))),
  ];
}

function slotsScreen() {
  const service = serviceOf(state.service);
  const slots = state.slots ? state.slots.slots : null;
  return [
    head(t("online.slot.title"), () => go("days")),
    h("p", { class: "online-day-chosen" }, h("b", {}, nameOf(service)), " · ", formatDay(state.day)),
    errorBox(),
    slots === null ? h("p", { class: "muted" }, t("common.loading"))
      : !slots.length ? h("div", { class: "alert alert-info" }, t("online.slot.none"))
        : h("div", { class: "online-slots" }, slots.map((s) => {
          const open = s.bookable && s.available > 0;
          const note = s.available <= 0 ? t("online.slot.full") : s.bookable ? t("online.slot.left", { n: s.available }) : t("online.slot.closed");
          return h("button", {
            class: `btn online-slot${open ? "" : " is-full"}`, type: "button", disabled: !open, dataset: { slot: s.start },
            onclick: () => go("confirm", { slot: s.start }),
          }, h("b", {}, `${s.start}–${s.end}`), h("small", {}, note));
        })),
  ];
}

/** The optional phone number, asked for only where the site sends reminders (its
 *  /online `reminders`: a webhook delivers them); nowhere else is it of any use. */
function phoneField() {
  if (!state.online.reminders) return null;
  const input = h("input", {
    id: "phone", name: "phone", type: "tel", inputmode: "tel", autocomplete: "tel", maxlength: 20,
    pattern: "[+0-9 \\(\\)\\.\\-]{8,20}", placeholder: "08…", value: state.phone,
  });
  input.addEventListener("input", () => { state.phone = input.value; state.key = null; });
  return h("div", { class: "field" },
    h("label", { for: "phone" }, t("online.phone")), input,
    h("span", { class: "hint", id: "phone-hint" }, t("online.phone.hint")));
}

function submitButton(label, id) {
  return h("button", { class: "btn btn-lg btn-primary", type: "submit", id, disabled: state.busy },
    state.busy ? t("online.busy") : label);
}

function form(children, onsubmit) {
  const el = h("form", { class: "online-form" }, children);
  el.addEventListener("submit", (event) => { event.preventDefault(); if (el.reportValidity()) onsubmit(); });
  return el;
}

function confirmScreen() {
  const service = serviceOf(state.service);
  const slot = state.slots ? state.slots.slots.find((s) => s.start === state.slot) : null;
  return [
    head(state.moving ? t("online.move.title") : t("online.confirm.title"), () => go("slots")),
    chosen(service),
    h("section", { class: "card online-summary" },
      h("dl", {},
        h("dt", {}, t("online.card.day")), h("dd", { id: "summary-day" }, formatDay(state.day)),
        h("dt", {}, t("online.card.slot")), h("dd", { id: "summary-slot" }, slot ? `${slot.start}–${slot.end}` : state.slot))),
    errorBox(),
    state.moving
      ? form([submitButton(t("online.move.submit"), "move-submit")], move)
      : form([phoneField(), submitButton(t("online.confirm.submit"), "book-submit")], book),
  ];
}

function joinScreen() {
  const service = serviceOf(state.service);
  return [
    head(t("online.join.title"), backToStart),
    chosen(service),
    h("p", {}, t("online.join.text")),
    service.confirm_on_arrival ? h("div", { class: "alert alert-info" }, t("online.join.confirm")) : null,
    errorBox(),
    form([phoneField(), submitButton(t("online.join.submit"), "join-submit")], join),
  ];
}

function joinedScreen() {
  const tk = state.joined;
  return [
    h("section", { class: "card booking-card" },
      h("span", { class: "ticket-label muted" }, t("online.joined.title", { number: tk.number })),
      h("span", { class: "booking-code", id: "join-code" }, tk.code),
      h("p", { class: "status-big" }, t("online.joined.code")),
      h("p", { class: "muted" }, t("status.confirm.rule"))),
    h("a", { class: "btn btn-lg btn-primary", id: "join-status", href: `status.html#${encodeURIComponent(tk.id)}` }, t("online.joined.status")),
  ];
}

function bookingScreen() {
  const b = state.booking;
  if (!b) {
    return [errorBox(), h("button", { class: "btn", type: "button", onclick: backToStart }, t("online.new"))];
  }
  const req = pick(b.requirements);
  const live = b.state === "booked";
  const pill = { booked: "pill-info", checked_in: "pill-ok", cancelled: "", missed: "pill-bad" }[b.state] ?? "";
  return [
    errorBox(),
    h("section", { class: "card booking-card", dataset: { state: b.state }, "aria-labelledby": "booking-code" },
      h("span", { class: "ticket-label muted" }, t("online.card.label")),
      h("span", { class: "booking-code", id: "booking-code" }, b.code),
      h("span", { class: `pill ${pill}`, id: "booking-state", dataset: { state: b.state } }, t(`online.state.${b.state}`)),
      live ? h("img", { class: "booking-qr", id: "booking-qr", src: b.qr_url, alt: t("online.card.qr.alt"), width: 220, height: 220 }) : null,
      live ? h("p", { class: "muted" }, t("online.card.qr")) : null,
      h("dl", { class: "booking-facts" },
        h("dt", {}, t("online.card.service")), h("dd", { id: "booking-service" }, pick(b.service_name)),
        h("dt", {}, t("online.card.day")), h("dd", { id: "booking-day" }, formatDay(b.day)),
        h("dt", {}, t("online.card.slot")), h("dd", { id: "booking-slot" }, `${b.slot}–${b.slot_end}`),
        live ? h("dt", {}, t("online.card.window")) : null,
        live ? h("dd", { id: "booking-window" }, t("online.card.window.value", { from: timeOf(b.check_in_from, tz()), until: timeOf(b.check_in_until, tz()) })) : null),
      b.state === "missed" ? h("p", {}, t("online.missed.text")) : null,
      b.ticket ? h("a", { class: "btn btn-primary", id: "booking-ticket", href: `status.html#${encodeURIComponent(b.ticket)}` },
        t("online.card.ticket", { number: b.number || "" }), " · ", t("online.card.follow")) : null),
    req && live ? h("section", { class: "card online-chosen" },
      h("b", {}, t("online.requirements")), h("p", { id: "booking-requirements" }, req)) : null,
    live ? h("p", { class: "muted online-keep" }, t("online.keep")) : null,
    live ? h("div", { class: "online-actions" },
      h("button", { class: "btn btn-lg", type: "button", id: "booking-move", disabled: state.busy,
        onclick: () => go("days", { service: b.service, day: null, slot: null, moving: true }) }, t("online.move")),
      h("button", { class: "btn btn-lg btn-danger", type: "button", id: "booking-cancel", disabled: state.busy, onclick: askCancel }, t("online.cancel"))) : null,
    h("button", { class: "btn", type: "button", id: "booking-new", onclick: backToStart }, t("online.new")),
  ];
}

const SCREENS = {
  services: servicesScreen,
  days: daysScreen,
  slots: slotsScreen,
  confirm: confirmScreen,
  join: joinScreen,
  joined: joinedScreen,
  booking: bookingScreen,
};

function render() {
  document.body.dataset.step = state.step;
  if (!state.online && state.step !== "booking" && !state.error) {
    fill(main, h("p", { class: "muted" }, t("common.loading")));
    return;
  }
  fill(main, ...SCREENS[state.step]());
}

apply();
mountToggle($("#lang"));
onLangChange(render);
render();
openPage();
setInterval(refreshBooking, 15000);
document.addEventListener("visibilitychange", refreshBooking);
addEventListener("hashchange", () => { if (bookingFromHash() !== (state.booking && state.booking.id)) openPage(); });
