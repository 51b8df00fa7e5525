// The citizen's satisfaction survey (SKM, PermenPANRB 14/2017) after a served visit: the
// nine elements from 1 to 4, or the one-tap rating the hall may use instead, an optional
// comment, and the link to SP4N-LAPOR for complaints. Used by the ticket status page (the
// citizen's phone) and the counter's survey tablet (survey.html).
//
// The survey is tied to the ticket (and so to its visit), never to a person: nothing about
// the citizen is asked. Questions, answers and the complaint link come from the server;
// every text is set as text, never parsed as HTML.

import { api, newKey, ticketUrl } from "./api.js";
import { errorText, lang } from "./i18n.js";
import { h } from "./ui.js";

const TEXT = {
  id: {
    title: "Survei Kepuasan Masyarakat",
    intro: "Bantu kami memperbaiki pelayanan. Survei ini tidak menanyakan nama atau data pribadi Anda.",
    quick: "Bagaimana pelayanan yang Anda terima?",
    comment: "Saran atau komentar (tidak wajib)",
    submit: "Kirim penilaian",
    sending: "Mengirim…",
    missing: "Masih ada {n} pertanyaan yang belum dijawab.",
    thanks: "Terima kasih! Penilaian Anda sudah kami terima.",
    closed: "Survei untuk kunjungan ini sudah ditutup.",
    lapor: "Ada keluhan? Sampaikan melalui SP4N-LAPOR! (lapor.go.id)",
    of: "{i} dari {n}",
    "err.survey_closed": "Survei untuk kunjungan ini sudah ditutup.",
    "err.survey_not_available": "Survei hanya untuk kunjungan yang selesai dilayani.",
    "err.invalid_survey": "Jawaban belum lengkap atau tidak sah. Periksa lagi, lalu kirim.",
  },
  en: {
    title: "Satisfaction survey",
    intro: "Help us improve. This survey does not ask for your name or any personal data.",
    quick: "How was the service you received?",
    comment: "Suggestion or comment (optional)",
    submit: "Send rating",
    sending: "Sending…",
    missing: "{n} question(s) still unanswered.",
    thanks: "Thank you! We have received your rating.",
    closed: "The survey for this visit is closed.",
    lapor: "A complaint? File it with SP4N-LAPOR! (lapor.go.id)",
    of: "{i} of {n}",
    "err.survey_closed": "The survey for this visit is closed.",
    "err.survey_not_available": "Only a visit that was served can be rated.",
    "err.invalid_survey": "The answers are incomplete or not valid. Check them, then send.",
  },
};

export function st(key, vars = {}) {
  const text = (TEXT[lang()] || TEXT.id)[key] ?? TEXT.id[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (vars[name] ?? ""));
}

const pickText = (names) => (names ? names[lang()] || names.id || "" : "");

/** The complaint link (SP4N-LAPOR): a plain link from the server's survey settings. */
export function laporLink(survey) {
  if (!survey || !survey.complaint_url) return null;
  return h("p", { class: "survey-lapor" },
    h("a", { href: survey.complaint_url, target: "_blank", rel: "noopener noreferrer", id: "lapor" }, st("lapor")));
}

/**
 * The survey card for a ticket. `info` is GET /api/v1/tickets/{id}/survey; `channel` is
 * "phone" or "counter"; `onDone(info)` is called after a successful (or already made)
 * submission with the info to show next. Returns null when the visit cannot be rated.
 */
export function surveyCard({ ticketId, info, channel, onDone, compact = false }) {
  if (!info || info.status === "not_served") return null;
  const survey = info.survey;
  const card = h("section", { class: "card survey-card", id: "survey", "aria-labelledby": "survey-title" });
  const head = [
    h("h2", { id: "survey-title" }, st("title")),
    compact ? null : h("p", { class: "muted survey-intro" }, st("intro")),
  ];
  if (info.status === "submitted") {
    card.append(...head.filter(Boolean), h("div", { class: "alert alert-ok", role: "status", id: "survey-thanks" }, st("thanks")), laporLink(survey) || "");
    return card;
  }
  if (info.status === "closed") {
    card.append(...head.filter(Boolean), h("p", { class: "muted" }, st("closed")), laporLink(survey) || "");
    return card;
  }
  const answers = new Array((survey.questions || []).length).fill(null);
  const error = h("div", { class: "survey-error", role: "alert", "aria-live": "assertive" });
  const comment = h("textarea", { id: "survey-comment", maxlength: survey.comment_max, rows: 2 });
  let busy = false;

  async function send(body) {
    if (busy) return;
    busy = true;
    submit.disabled = true;
    submit.textContent = st("sending");
    error.textContent = "";
    const text = comment.value.trim();
    if (text) body.comment = text;
    body.channel = channel;
    try {
      await api(ticketUrl(ticketId, "/survey"), { method: "POST", body, key: newKey() });
      onDone({ ...info, status: "submitted" });
    } catch (exc) {
      if (exc.name === "ApiError" && exc.code === "survey_already_submitted") {
        onDone({ ...info, status: "submitted" });
        return;
      }
      const own = exc.name === "ApiError" && TEXT.id[`err.${exc.code}`];
      error.textContent = own ? st(`err.${exc.code}`) : errorText(exc);
      busy = false;
      submit.disabled = false;
      submit.textContent = st("submit");
    }
  }

  const submit = h("button", { class: "btn btn-lg btn-primary", type: "button", id: "survey-submit" }, st("submit"));
  const body = [];
  if (survey.mode === "quick") {
    body.push(h("p", { class: "survey-question" }, st("quick")),
      h("div", { class: "survey-quick", role: "group", "aria-label": st("quick") },
        survey.choices.slice().reverse().map((c) => h("button", {
          class: `btn btn-lg survey-tap tap-${c.value}`, type: "button", dataset: { value: c.value },
          onclick: () => send({ rating: c.value }),
        }, pickText(c)))));
    submit.hidden = true;
  } else {
    survey.questions.forEach((q, i) => {
      const buttons = q.choices.map((c) => h("button", {
        class: "survey-choice", type: "button", role: "radio", "aria-checked": "false",
        dataset: { value: c.value },
        onclick: (event) => {
          answers[i] = c.value;
          error.textContent = "";
          for (const b of event.currentTarget.parentElement.children) b.setAttribute("aria-checked", String(b === event.currentTarget));
        },
      }, h("b", {}, String(c.value)), h("span", {}, pickText(c))));
      body.push(h("fieldset", { class: "survey-item", dataset: { code: q.code } },
        h("legend", {},
          h("span", { class: "survey-step muted" }, `${q.code.toUpperCase()} · ${pickText(q.element)} · ${st("of", { i: i + 1, n: survey.questions.length })}`),
          h("span", { class: "survey-question" }, pickText(q.text))),
        h("div", { class: "survey-choices", role: "radiogroup" }, buttons)));
    });
    submit.addEventListener("click", () => {
      const missing = answers.filter((a) => a === null).length;
      if (missing) { error.textContent = st("missing", { n: missing }); return; }
      send({ scores: answers.slice() });
    });
  }
  card.append(...head.filter(Boolean), ...body,
    h("div", { class: "field" }, h("label", { for: "survey-comment" }, st("comment")), comment),
    error, submit, laporLink(survey) || "");
  return card;
}
