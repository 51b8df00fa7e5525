// The survey tablet at a counter (loket), facing the citizen: once the officer finishes a
// served visit, the tablet offers that ticket's satisfaction survey; after an answer (or a
// skip) it waits for the next one.
//
// URL: survey.html?site=<site>&counter=<counter id>&token=<survey token>. A survey token
// (role "survey", bound to the counter) can do nothing but read that counter's last served
// visit, so a device citizens touch holds no power over the queue. It is kept in
// sessionStorage (gone with the browser session) and taken out of the address bar. It
// asks the server every few seconds which served ticket of this counter (last 15 minutes)
// has no survey yet; the ticket id it gets is used only to post that one survey.

import { api, siteUrl, ticketUrl } from "./api.js";
import { apply, errorText, lang, mountToggle, onLangChange, pick } from "./i18n.js";
import { st, surveyCard } from "./survey.js";
import { $, KeptToken, fill, h, markReady, params, store } from "./ui.js";

const POLL_MS = 4000;
const THANKS_MS = 8000;
const TEXT = {
  id: {
    idle: "Terima kasih telah berkunjung",
    idleText: "Setelah Anda selesai dilayani, silakan nilai pelayanan kami di layar ini.",
    ticket: "Nomor antrian",
    skip: "Lewati",
    setup: "Tablet survei belum disiapkan: buka dengan ?site=…&counter=…&token=… (token survei).",
  },
  en: {
    idle: "Thank you for your visit",
    idleText: "Once you have been served, please rate our service on this screen.",
    ticket: "Ticket number",
    skip: "Skip",
    setup: "The survey tablet is not set up: open it with ?site=…&counter=…&token=… (survey token).",
  },
};
const tt = (key) => (TEXT[lang()] || TEXT.id)[key];

const query = params();
const site = query.site || store("local").get("antrian.site");
const counterId = query.counter || null;
const token = new KeptToken(store("session"), `antrian.survey.token.${site}.${counterId}`);

const main = $("#main");
const state = { pending: null, info: null, card: null, error: null, skipped: new Set(), thanksUntil: 0 };

async function poll() {
  if (!token.value || !site || !counterId) { render(); return; }
  if (Date.now() < state.thanksUntil) return;
  try {
    const answer = await api(`${siteUrl(site, "/surveys/pending")}?counter=${encodeURIComponent(counterId)}`, { token: token.value });
    state.error = null;
    const ticket = answer.ticket && !state.skipped.has(answer.ticket.id) ? answer.ticket : null;
    if (!ticket) {
      state.pending = null;
      state.info = null;
      state.card = null;
    } else if (!state.pending || state.pending.id !== ticket.id) {
      state.pending = ticket;
      state.info = await api(ticketUrl(ticket.id, "/survey"));
      state.card = null;
    }
  } catch (exc) {
    state.error = exc;
  }
  render();
  markReady();
}

function done(info) {
  state.info = info;
  state.card = null;
  state.thanksUntil = Date.now() + THANKS_MS;
  render();
  setTimeout(() => {
    if (state.pending) state.skipped.add(state.pending.id);
    state.pending = null;
    state.info = null;
    poll();
  }, THANKS_MS);
}

function render() {
  $("#counter-name").textContent = counterId || "Loket";
  if (!token.value || !site || !counterId) { fill(main, h("div", { class: "alert alert-warn" }, tt("setup"))); return; }
  const banner = state.error ? h("div", { class: "alert alert-bad", role: "alert" }, errorText(state.error)) : null;
  if (!state.pending || !state.info) {
    fill(main, banner, h("section", { class: "card survey-idle", id: "survey-idle" },
      h("h1", {}, tt("idle")), h("p", { class: "muted" }, tt("idleText"))));
    return;
  }
  if (!state.card) {
    state.card = surveyCard({ ticketId: state.pending.id, info: state.info, channel: "counter", onDone: done, compact: true });
  }
  const skip = state.info.status === "open"
    ? h("button", { class: "btn", type: "button", id: "survey-skip", onclick: () => { state.skipped.add(state.pending.id); state.pending = null; state.info = null; state.card = null; render(); } }, tt("skip"))
    : null;
  fill(main, banner,
    h("div", { class: "survey-ticket" }, h("span", { class: "muted" }, tt("ticket")), h("b", { id: "survey-number" }, state.pending.number || "–"),
      h("span", {}, pick(state.pending.service_name))),
    state.card, skip);
}

apply();
mountToggle($("#lang"));
onLangChange(() => { state.card = null; render(); });
document.title = `${st("title")} — Antrian`;
render();
poll();
setInterval(() => { if (!document.hidden) poll(); }, POLL_MS);
