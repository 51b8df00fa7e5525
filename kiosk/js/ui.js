// Small DOM and formatting helpers shared by every page.

import { t, tIn, lang } from "./i18n.js";

/** Build an element: h("div", {class: "x", onclick: fn}, "text", child, ...). Text is
 *  always set as text (never parsed as HTML), so names from the server stay inert. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") el.style.cssText = value; // CSSOM: allowed by the pages' CSP
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);

export function params() {
  const url = new URL(location.href);
  return Object.fromEntries(url.searchParams.entries());
}

/** Remove a query parameter from the address bar (a token should not stay visible). */
export function dropParam(name) {
  const url = new URL(location.href);
  if (!url.searchParams.has(name)) return;
  url.searchParams.delete(name);
  history.replaceState(null, "", url.pathname + url.search + url.hash);
}

export function store(kind) {
  const backend = kind === "session" ? globalThis.sessionStorage : globalThis.localStorage;
  return {
    get(key) { try { return backend.getItem(key); } catch { return null; } },
    set(key, value) { try { backend.setItem(key, value); } catch { /* private mode */ } },
    remove(key) { try { backend.removeItem(key); } catch { /* private mode */ } },
  };
}

/** The token a staff screen signs in with, kept in `storage` (a `store()`) under `key`:
 *  localStorage on a wall screen provisioned once, sessionStorage where a person signs in.
 *  A `token` in the address is taken into storage and out of the address bar. */
export class KeptToken {
  constructor(storage, key) {
    const given = params().token;
    if (given) storage.set(key, given);
    dropParam("token");
    Object.assign(this, { storage, key, value: storage.get(key) });
  }

  set(value) {
    this.value = value;
    this.storage.set(this.key, value);
  }

  forget() {
    this.value = null;
    this.storage.remove(this.key);
  }
}

/** The server's clock as seen from here: its `now` plus the time elapsed since we read it.
 *  (Screens show durations against the server's time, not the device's, which drifts.) */
export class ServerClock {
  constructor() { this.base = null; this.at = 0; }
  sync(iso) {
    if (!iso) return;
    this.base = Date.parse(iso);
    this.at = performance.now();
  }
  now() {
    if (this.base === null) return Date.now();
    return this.base + (performance.now() - this.at);
  }
  secondsSince(iso) {
    if (!iso) return null;
    return Math.max(0, (this.now() - Date.parse(iso)) / 1000);
  }
}

const locale = () => (lang() === "en" ? "en-GB" : "id-ID");

export function formatClock(ms, timeZone, withSeconds = false) {
  const opts = { hour: "2-digit", minute: "2-digit", hour12: false };
  if (withSeconds) opts.second = "2-digit";
  try { return new Intl.DateTimeFormat(locale(), { ...opts, timeZone }).format(ms).replace(/\./g, ":"); }
  catch { return new Intl.DateTimeFormat(locale(), opts).format(ms).replace(/\./g, ":"); }
}

export function formatDate(ms, timeZone) {
  const opts = { weekday: "long", day: "numeric", month: "long", year: "numeric" };
  try { return new Intl.DateTimeFormat(locale(), { ...opts, timeZone }).format(ms); }
  catch { return new Intl.DateTimeFormat(locale(), opts).format(ms); }
}

export function timeOf(iso, timeZone, withSeconds = false) {
  return iso ? formatClock(Date.parse(iso), timeZone, withSeconds) : "–";
}

// Indonesia's zones by the names Indonesians write after a time of day.
const ZONE_ABBREVIATIONS = {
  "Asia/Jakarta": "WIB",
  "Asia/Pontianak": "WIB",
  "Asia/Makassar": "WITA",
  "Asia/Ujung_Pandang": "WITA",
  "Asia/Jayapura": "WIT",
};

/** How a site's zone follows a time: WIB, WITA or WIT for Indonesia's zones, otherwise the
 *  UTC offset that the ISO instant `iso` carries ("UTC+1", "UTC+5:30", "UTC-3", "UTC"). */
export function zoneLabel(timeZone, iso) {
  if (ZONE_ABBREVIATIONS[timeZone]) return ZONE_ABBREVIATIONS[timeZone];
  const m = /([+-])(\d{2}):?(\d{2})$/.exec(iso || "");
  if (!m || (m[2] === "00" && m[3] === "00")) return "UTC";
  return `UTC${m[1]}${Number(m[2])}${m[3] === "00" ? "" : `:${m[3]}`}`;
}

/** The site's calendar day at instant `ms`, as the UTC midnight of that date (so two days
 *  subtract to a whole number of 86 400 000 ms). */
function siteDay(ms, timeZone) {
  const opts = { year: "numeric", month: "2-digit", day: "2-digit" };
  let parts;
  try { parts = new Intl.DateTimeFormat("en-CA", { ...opts, timeZone }).formatToParts(ms); }
  catch { parts = new Intl.DateTimeFormat("en-CA", opts).formatToParts(ms); }
  const part = (type) => Number(parts.find((p) => p.type === type).value);
  return Date.UTC(part("year"), part("month") - 1, part("day"));
}

/** "Buka kembali Senin, 08:00 WITA" / "Opens again Monday, 08:00 WITA": when the hall opens,
 *  from the API's `next_opening` (or a refusal's `details.opens_at`), site-local ISO 8601
 *  with the site's offset, whose date and time are read as written. "hari ini" / "besok" /
 *  "Senin depan" against the site's day at `nowMs` (the server's clock). `key` is the
 *  sentence ("open.again"; "open.issue_again" for a service's tickets), `language` the
 *  language ("id" or "en"; the page's by default). Empty when `iso` is null. */
export function opensAgain(iso, timeZone, nowMs, key = "open.again", language = lang()) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(iso || "");
  if (!m) return "";
  const day = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  const ahead = Math.round((day - siteDay(nowMs, timeZone)) / 86400000);
  const name = tIn(language, "day.names").split("|")[new Date(day).getUTCDay()];
  const when = ahead <= 0 ? tIn(language, "day.today")
    : ahead === 1 ? tIn(language, "day.tomorrow")
      : ahead >= 7 ? tIn(language, "day.next", { day: name })
        : name;
  return tIn(language, key, { when, time: `${m[4]}:${m[5]}`, zone: zoneLabel(timeZone, iso) });
}

/** "m:ss" or "h:mm:ss" for a running duration. */
export function stopwatch(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.floor(seconds);
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return hh ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

/** A human duration in minutes ("± 12 menit", "< 1 menit", "1 jam 5 menit"). */
export function minutes(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const m = Math.round(seconds / 60);
  if (m < 1) return t("dur.lt1");
  if (m < 60) return t("dur.min", { n: m });
  return t("dur.hmin", { h: Math.floor(m / 60), m: m % 60 });
}

/** "ok" below 80% of the target, "warn" from 80%, "bad" from 100%. */
export function level(seconds, target) {
  if (seconds === null || seconds === undefined || !target) return "ok";
  const ratio = seconds / target;
  return ratio >= 1 ? "bad" : ratio >= 0.8 ? "warn" : "ok";
}

/** Move the page's running durations on by `clock` (a ServerClock): each `.js-since`
 *  element is a stopwatch from its data-since; each `.js-wait` one too, coloured by its
 *  level (lvl-ok, lvl-warn, lvl-bad) against its data-target. */
export function tickDurations(clock) {
  for (const el of document.querySelectorAll(".js-since")) el.textContent = stopwatch(clock.secondsSince(el.dataset.since));
  for (const el of document.querySelectorAll(".js-wait")) {
    const secs = clock.secondsSince(el.dataset.since);
    el.textContent = stopwatch(secs);
    el.classList.remove("lvl-ok", "lvl-warn", "lvl-bad");
    el.classList.add(`lvl-${level(secs, Number(el.dataset.target))}`);
  }
}

export function percent(part, whole) {
  if (!whole) return "–";
  return `${Math.round((100 * part) / whole)}%`;
}

/** Show a message for a few seconds (or until closed) in the page's toast area. */
export function toast(message, kind = "info", ms = 6000) {
  let area = $(".toast-area");
  if (!area) {
    area = h("div", { class: "toast-area", "aria-live": "polite" });
    document.body.append(area);
  }
  const close = h("button", { class: "alert-close", type: "button", "aria-label": t("common.close") }, "×");
  const el = h("div", { class: `alert alert-${kind} toast`, role: kind === "bad" ? "alert" : "status" },
    h("div", {}, message), close);
  close.addEventListener("click", () => el.remove());
  area.append(el);
  if (ms) setTimeout(() => el.remove(), ms);
  return el;
}

/** Mark the page as showing live data (the benchmark and the tests wait for this). */
export function markReady() {
  if (document.body.dataset.ready !== "1") {
    document.body.dataset.ready = "1";
    globalThis.antrianReadyAt = performance.now();
  }
}

const ICONS = {
  back: '<path d="M15 18l-6-6 6-6"/>',
  building: '<path d="M3 21h18M5 21V8l7-5 7 5v13M9 21v-5h6v5M8.5 11h.01M12 11h.01M15.5 11h.01"/>',
  elderly: '<circle cx="10" cy="4" r="2"/><path d="M10 7.5 8 14l3 2v5M8 14l-2 7M9.5 9.5l4.5 2.5M16 11v10"/>',
  wheelchair: '<circle cx="9" cy="4" r="2"/><path d="M9 7v6h5l3 6.5M9 10h5"/><path d="M7 11.5a5.5 5.5 0 1 0 7.6 7"/>',
  pregnant: '<circle cx="11" cy="4" r="2"/><path d="M10 7.5c-1 3-1 5.5 0 7.5M10 7.5c2 0 3.3 1.8 4.2 4a3 3 0 0 1-2.2 3.8h-2M10 15v6M13 15l1 6"/>',
  ticket: '<path d="M4 7a2 2 0 0 1 2-2h12a2 2 0 0 1 2 2v3a2 2 0 0 0 0 4v3a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2v-3a2 2 0 0 0 0-4z"/><path d="M9 9h6M9 12h6M9 15h4"/>',
  printer: '<path d="M6 9V3h12v6M6 18H4a2 2 0 0 1-2-2v-5a2 2 0 0 1 2-2h16a2 2 0 0 1 2 2v5a2 2 0 0 1-2 2h-2"/><path d="M6 14h12v7H6z"/>',
  check: '<path d="M5 12.5l4.5 4.5L19 7"/>',
  arrow: '<path d="M4 12h15M13 6l6 6-6 6"/>',
  monitor: '<rect x="2" y="4" width="20" height="13" rx="2"/><path d="M8 21h8M12 17v4"/>',
  desk: '<path d="M3 10h18M5 10v10M19 10v10M8 6h8v4H8z"/>',
  chart: '<path d="M4 20V10M10 20V4M16 20v-7M22 20H2"/>',
  phone: '<rect x="7" y="2" width="10" height="20" rx="2"/><path d="M11 18h2"/>',
};

/** An inline SVG icon (stroke style, inherits the text colour). */
export function icon(name, cls = "") {
  const wrap = document.createElement("span");
  wrap.innerHTML = `<svg class="${cls}" viewBox="0 0 24 24" width="24" height="24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">${ICONS[name] || ""}</svg>`;
  return wrap.firstChild;
}
