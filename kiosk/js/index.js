// The landing page: choose a site, then open one of its screens.

import { api, siteUrl } from "./api.js";
import { apply, lang, mountToggle, onLangChange, t } from "./i18n.js";
import { $, fill, h, icon, markReady, store } from "./ui.js";

const local = store("local");
const state = { sites: [], site: null, directory: null };

async function loadSites() {
  const { sites } = await api("/api/v1/sites");
  state.sites = sites;
  const saved = local.get("antrian.site");
  state.site = sites.some((s) => s.id === saved) ? saved : (sites[0] || {}).id;
  fill($("#site"), sites.map((s) => h("option", { value: s.id, selected: s.id === state.site }, s.name)));
  await loadDirectory();
}

async function loadDirectory() {
  state.directory = state.site ? await api(siteUrl(state.site)) : null;
  render();
  markReady();
}

function card(id, iconName, title, text, body) {
  return h("article", { class: "card screen-card", id: `card-${id}` },
    h("span", { class: "icon" }, icon(iconName)),
    h("h2", {}, title), h("p", {}, text), body);
}

function link(href, label) {
  return h("a", { class: "btn btn-primary", href }, label || t("common.open"));
}

function render() {
  const d = state.directory;
  if (!d) return;
  const site = encodeURIComponent(state.site);
  const counterSelect = h("select", { id: "pick-counter" }, d.counters.map((c) => h("option", { value: c.id }, c.name)));
  const zones = [...new Set(d.counters.map((c) => c.zone).filter(Boolean))];
  const zoneSelect = h("select", { id: "pick-zone" }, h("option", { value: "" }, t("index.zone.all")),
    zones.map((z) => h("option", { value: z }, z)));
  const counterLink = link(`counter.html?site=${site}&counter=${encodeURIComponent(d.counters[0].id)}`);
  counterSelect.addEventListener("change", () => { counterLink.href = `counter.html?site=${site}&counter=${encodeURIComponent(counterSelect.value)}`; });
  const displayLink = link(`display.html?site=${site}`);
  zoneSelect.addEventListener("change", () => {
    displayLink.href = `display.html?site=${site}${zoneSelect.value ? `&zone=${encodeURIComponent(zoneSelect.value)}` : ""}`;
  });
  fill($("#screens"),
    card("kiosk", "ticket", t("index.kiosk"), t("index.kiosk.text"), h("div", { class: "row" }, link(`kiosk.html?site=${site}`))),
    card("counter", "desk", t("index.counter"), t("index.counter.text"), h("div", { class: "row" },
      h("div", { class: "field" }, h("label", { for: "pick-counter" }, t("index.counter.pick")), counterSelect), counterLink)),
    card("board", "chart", t("index.board"), t("index.board.text"), h("div", { class: "row" }, link(`board.html?site=${site}`))),
    card("display", "monitor", t("index.display"), t("index.display.text"), h("div", { class: "row" },
      h("div", { class: "field" }, h("label", { for: "pick-zone" }, t("index.zone")), zoneSelect), displayLink)),
    card("status", "phone", t("index.status"), t("index.status.text"), h("p", { class: "muted" }, t("index.status.how"))),
    surveyCard(site, d));
}

// The counter's survey tablet (survey.html): texts kept here, next to the only card that
// uses them.
const SURVEY_TEXT = {
  id: ["Tablet survei kepuasan", "Di loket, menghadap warga: setelah selesai dilayani, warga menilai layanan (SKM). Perlu token loket."],
  en: ["Satisfaction survey tablet", "At the counter, facing the citizen: after being served, the citizen rates the visit (SKM). Needs the counter's token."],
};

function surveyCard(site, d) {
  const [title, text] = SURVEY_TEXT[lang()] || SURVEY_TEXT.id;
  const select = h("select", { id: "pick-survey-counter" }, d.counters.map((c) => h("option", { value: c.id }, c.name)));
  const open = link(`survey.html?site=${site}&counter=${encodeURIComponent(d.counters[0].id)}`);
  select.addEventListener("change", () => { open.href = `survey.html?site=${site}&counter=${encodeURIComponent(select.value)}`; });
  return card("survey", "check", title, text, h("div", { class: "row" },
    h("div", { class: "field" }, h("label", { for: "pick-survey-counter" }, t("index.counter.pick")), select), open));
}

$("#site").addEventListener("change", (event) => {
  state.site = event.target.value;
  local.set("antrian.site", state.site);
  loadDirectory();
});

apply();
mountToggle($("#lang"));
onLangChange(render);
loadSites();
