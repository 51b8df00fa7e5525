// The public TV display: who is called to which counter, with a voice call or a chime.
//
// URL: display.html?site=<site>[&zone=<zone>]. No token: the public stream and /display
// carry ticket numbers only, never ticket ids or personal data. Every call and recall is
// queued and announced in turn, so none is skipped when several come at once. A restart of
// the service is survived without a touch: the stream reconnects, resumes or resets, and
// the display re-reads /display. /display is the display's only read: it carries the
// site's timezone (for the clock) and the current break (for the banner) as well, and is
// re-read every minute, since a break begins and ends with the clock, not with an event.
// While the hall is closed, a banner says when it opens again (`next_opening`), in both
// languages.
//
// For tests and diagnostics, window.antrianCalls lists the announced calls (the last
// KEEP_CALLS of them) with the mode used: "speech" (an id-ID voice) or "chime" (WebAudio
// tone plus the flashing banner); body[data-calls] counts them all since the page loaded.
// A display runs for days: what it remembers is bounded.

import { api, siteUrl } from "./api.js";
import { apply, t } from "./i18n.js";
import { Live, bindConnIndicator, refresher } from "./live.js";
import { callText, chime, indonesianVoice, speak, audioContext } from "./speech.js";
import { $, ServerClock, fill, formatClock, formatDate, h, markReady, opensAgain, params, store } from "./ui.js";

const query = params();
const site = query.site || store("local").get("antrian.site");
const zone = query.zone || null;
const clock = new ServerClock();
const state = { display: null, newest: null };
// Event seqs already queued for announcing, oldest first (a Set keeps insertion order). A
// seq is announced once; seqs only grow, so forgetting the oldest is safe once far more
// calls came after it than the stream could ever re-send after a reconnection.
const KEEP_SEQS = 500;
const KEEP_CALLS = 500;
const announced = new Set();
const calls = [];
let callCount = 0;
globalThis.antrianCalls = calls;

/** True the first time a seq is seen; remembers the last KEEP_SEQS of them. */
function firstTime(seq) {
  if (announced.has(seq)) return false;
  announced.add(seq);
  while (announced.size > KEEP_SEQS) announced.delete(announced.values().next().value);
  return true;
}

// -- data -----------------------------------------------------------------------------------

async function load() {
  const path = siteUrl(site, `/display${zone ? `?zone=${encodeURIComponent(zone)}` : ""}`);
  const display = await api(path);
  clock.sync(display.now);
  state.display = display;
  render();
  markReady();
}

const refresh = refresher(load, 300);

// /display lists every counter of its zone (of the site without a zone) in `serving`,
// whatever its state: that is where a call's counter name and zone are found.
const servingOf = (id) => (state.display ? state.display.serving.find((s) => s.counter === id) : null);

function counterName(id) {
  const known = servingOf(id);
  return known ? known.counter_name : id;
}

function inZone(counterId) {
  if (!zone) return true;
  return !state.display || !!servingOf(counterId); // not read yet: announce rather than miss
}

// -- rendering ------------------------------------------------------------------------------

function render() {
  const d = state.display;
  if (!d) return;
  $("#site-name").textContent = d.name;
  if (zone) $("#display-sub").textContent = `${t("display.sub")} · ${t("display.zone", { z: zone })}`;
  const newestAt = d.recent.length ? d.recent[0].called_at : null;
  const shown = d.serving.filter((s) => s.state !== "closed" || s.number);
  fill($("#serving"), shown.map((s) => h("div", {
    class: `srv${s.number ? "" : " is-empty"}${s.state !== "open" ? " is-closed" : ""}${s.number && s.called_at === newestAt ? " newest" : ""}`,
    dataset: { counter: s.counter },
  }, h("span", { class: "srv-counter" }, s.counter_name), h("span", { class: "srv-number" }, s.number || "—"))));
  fill($("#history"), d.recent.map((r) => h("li", { dataset: { number: r.number } },
    h("span", { class: "h-number" }, r.number),
    h("span", { class: "h-counter" }, r.counter_name || r.counter))));
  if (!state.newest && d.recent.length) showCallout({ number: d.recent[0].number, counterName: d.recent[0].counter_name }, false);
  const brk = d.break;
  const banner = $("#break-banner");
  banner.hidden = !brk;
  if (brk) banner.textContent = `${brk.label} · ${brk.until}`;
  renderClosed();
  tick();
}

// Closed: when the hall opens again, in Bahasa Indonesia and, under it, in English (a TV
// has no language toggle and is read by everyone in the room). From `next_opening`
// against the server's day; re-drawn every minute with the re-read, so "besok" turns into
// "hari ini" at midnight.
function renderClosed() {
  const d = state.display;
  const at = d && !d.open ? d.next_opening : null;
  const box = $("#closed-banner");
  box.hidden = !at;
  if (!at) return;
  $("#closed-id").textContent = opensAgain(at, d.timezone, clock.now(), "open.again", "id");
  $("#closed-en").textContent = opensAgain(at, d.timezone, clock.now(), "open.again", "en");
}

function showCallout(call, flash) {
  state.newest = call;
  const box = $("#callout");
  $("#callout-number").textContent = call.number;
  $("#callout-counter").textContent = call.counterName;
  box.classList.remove("idle");
  if (flash) {
    box.classList.remove("flash");
    void box.offsetWidth; // restart the animation for a new call
    box.classList.add("flash");
  }
}

function tick() {
  const tz = state.display ? state.display.timezone : undefined;
  const now = clock.now();
  $("#clock").textContent = formatClock(now, tz);
  $("#date").textContent = formatDate(now, tz);
}

// -- announcements --------------------------------------------------------------------------

const pending = [];
let playing = false;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function enqueue(call) {
  pending.push(call);
  if (!playing) play();
}

async function play() {
  playing = true;
  while (pending.length) {
    const call = pending.shift();
    const voice = indonesianVoice();
    const mode = voice ? "speech" : "chime";
    const text = callText(call.number, call.counterName);
    calls.push({ ...call, mode, text, at: new Date().toISOString() });
    if (calls.length > KEEP_CALLS) calls.splice(0, calls.length - KEEP_CALLS);
    document.body.dataset.calls = String(++callCount);
    showCallout(call, true);
    const sounded = await chime().catch(() => false);
    if (!sounded) offerSoundUnlock();
    if (voice) await speak(text, voice);
    else await sleep(2500); // the flashing banner carries the call; give it its time
  }
  playing = false;
}

function offerSoundUnlock() {
  const ctx = audioContext();
  if (!ctx || ctx.state === "running") return;
  const button = $("#sound");
  button.hidden = false;
  button.onclick = async () => {
    try { await ctx.resume(); } catch { /* still blocked */ }
    if (ctx.state === "running") button.hidden = true;
  };
}

function onEvent(event) {
  if ((event.type === "ticket_called" || event.type === "ticket_recalled") && event.number && event.counter) {
    if (inZone(event.counter) && firstTime(event.seq)) {
      enqueue({ number: event.number, counter: event.counter, counterName: counterName(event.counter), kind: event.type === "ticket_recalled" ? "recall" : "call", seq: event.seq });
    }
  }
  refresh();
}

// speechSynthesis fills its voice list lazily; asking once early makes it ready in time.
if (globalThis.speechSynthesis) speechSynthesis.getVoices();

apply();
setInterval(tick, 1000);
setInterval(() => refresh(), 60000); // breaks, closing and opening come with the clock, not events
load().catch(() => refresh());
new Live({
  site,
  onEvent,
  onResync: () => refresh(),
  onStatus: bindConnIndicator($("#conn"), t),
  knownSeq: () => (state.display ? state.display.seq : null),
}).start();
