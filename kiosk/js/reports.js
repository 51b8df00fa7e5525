// Report downloads on the floor board (manager and admin tokens): the site's report for a
// range of days as printable HTML, CSV for Excel, or JSON. The board's token is read from
// where board.js keeps it; the file is fetched with the token in the Authorization header
// (never in a URL) and saved through a temporary object URL.

import { api, siteUrl } from "./api.js";
import { errorText, lang, onLangChange } from "./i18n.js";
import { $, fill, h, params, store } from "./ui.js";

const TEXT = {
  id: {
    title: "Laporan pelayanan dan IKM",
    from: "Dari tanggal",
    to: "Sampai tanggal",
    html: "Unduh laporan cetak (HTML)",
    csv: "Unduh CSV (Excel)",
    json: "Unduh JSON",
    busy: "Menyiapkan laporan…",
    done: "Laporan diunduh: {name}. Buka berkas HTML lalu cetak atau simpan sebagai PDF.",
    signin: "Masuk dengan token manajer untuk mengunduh laporan.",
  },
  en: {
    title: "Service and satisfaction (IKM) report",
    from: "From",
    to: "To",
    html: "Download printable report (HTML)",
    csv: "Download CSV (Excel)",
    json: "Download JSON",
    busy: "Preparing the report…",
    done: "Report downloaded: {name}. Open the HTML file, then print or save it as PDF.",
    signin: "Sign in with a manager token to download reports.",
  },
};
const rt = (key, vars = {}) => ((TEXT[lang()] || TEXT.id)[key] || key).replace(/\{(\w+)\}/g, (_, n) => vars[n] ?? "");

const local = store("local");
const site = params().site || local.get("antrian.site");
const panel = $("#reports");
const DAY_MS = 86400000;
// Service days are the site's, so the default range (the last 30 days) is counted in the
// site's timezone from the server's clock, not the device's.
function dayIn(ms, timeZone) {
  try { return new Intl.DateTimeFormat("en-CA", { timeZone }).format(ms); }
  catch { return new Date(ms).toISOString().slice(0, 10); }
}
const range = { from: dayIn(Date.now() - 29 * DAY_MS), to: dayIn(Date.now()) };
let status = null;

async function serverDates() {
  try {
    const directory = await api(siteUrl(site));
    const now = Date.parse(directory.now);
    range.from = dayIn(now - 29 * DAY_MS, directory.timezone);
    range.to = dayIn(now, directory.timezone);
    render();
  } catch { /* keep the device's dates */ }
}

async function download(format) {
  const token = local.get(`antrian.board.token.${site}`);
  if (!token) { status = { kind: "warn", text: rt("signin") }; render(); return; }
  status = { kind: "info", text: rt("busy") };
  render();
  // A cleared date is left out (the server then takes its default); an empty one is refused.
  const query = new URLSearchParams({ format });
  for (const key of ["from", "to"]) if (range[key]) query.set(key, range[key]);
  const url = `${siteUrl(site, "/report")}?${query}`;
  try {
    const response = await fetch(url, { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
    if (!response.ok) {
      let body = {};
      try { body = await response.json(); } catch { /* not JSON */ }
      const error = Object.assign(new Error(body.message || `HTTP ${response.status}`), { name: "ApiError", code: body.code, details: body.details || {} });
      throw error;
    }
    const blob = await response.blob();
    // The server names the file after the range it reported (a cleared date took its default).
    const named = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
    const name = named ? named[1].replace(/\.[a-z]+$/, `.${format}`) : `laporan-${site}-${range.from}-${range.to}.${format}`;
    const link = h("a", { href: URL.createObjectURL(blob), download: name, hidden: true });
    document.body.append(link);
    link.click();
    setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
    status = { kind: "ok", text: rt("done", { name }) };
  } catch (exc) {
    status = { kind: "bad", text: errorText(exc) };
  }
  render();
}

function render() {
  if (!panel || !site) return;
  const date = (id, key) => h("div", { class: "field" }, h("label", { for: id }, rt(key)),
    h("input", { id, type: "date", value: range[key], onchange: (e) => { range[key] = e.target.value; } }));
  fill(panel,
    h("h2", {}, rt("title")),
    date("report-from", "from"), date("report-to", "to"),
    h("button", { class: "btn btn-primary", type: "button", id: "report-html", onclick: () => download("html") }, rt("html")),
    h("button", { class: "btn", type: "button", id: "report-csv", onclick: () => download("csv") }, rt("csv")),
    h("button", { class: "btn", type: "button", id: "report-json", onclick: () => download("json") }, rt("json")),
    status ? h("div", { class: `alert alert-${status.kind} report-status`, role: "status", id: "report-status" }, status.text) : null);
}

onLangChange(render);
render();
if (site) serverDates();
