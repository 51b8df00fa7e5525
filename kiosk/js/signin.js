// Signing a screen in: the sign-in form (board, counter page, kiosk set-up), and the site's
// staff snapshot read and followed live with the screen's token (board, counter page).

import { api, siteUrl } from "./api.js";
import { errorText, t } from "./i18n.js";
import { Live, bindConnIndicator } from "./live.js";
import { $, h, markReady } from "./ui.js";

/** A labelled field of a sign-in form, with an optional hint below it. */
export function field(id, label, control, hint = null) {
  return h("div", { class: "field" }, h("label", { for: id }, label), control,
    hint ? h("span", { class: "hint" }, hint) : null);
}

/** A password field for a token, `form.token` in its form. */
export function tokenInput(id = "token", autocomplete = "current-password") {
  return h("input", { id, name: "token", type: "password", required: true, autocomplete });
}

/** A sign-in card: title, an optional line of text, the last refusal (`error`), the fields
 *  and the submit button; `onSubmit(form)` when it is sent. */
export function signinForm({ title, text = null, error = null, fields, submit, onSubmit }) {
  const form = h("form", { class: "card signin" },
    h("h1", {}, title),
    text ? h("p", { class: "muted" }, text) : null,
    error ? h("div", { class: "alert alert-bad", role: "alert" }, errorText(error)) : null,
    fields,
    h("button", { class: "btn btn-lg btn-primary", type: "submit" }, submit));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onSubmit(form);
  });
  return form;
}

/** Read the site's staff snapshot with `token` and `show(snap)` it (the server's clock
 *  synced first), then mark the page ready. A token the server refuses is forgotten and
 *  `refused(error)` called instead; any other failure is thrown. */
export async function loadSnapshot(site, token, clock, show, refused) {
  if (!token.value) return;
  let snap;
  try {
    snap = await api(siteUrl(site, "/snapshot"), { token: token.value });
  } catch (exc) {
    if (exc.name !== "ApiError" || !exc.auth) throw exc;
    token.forget();
    refused(exc);
    return;
  }
  clock.sync(snap.now);
  show(snap);
  markReady();
}

/** The site's live stream with `token`: every change and every resync `refresh()`es the
 *  page, whose snapshot `shown()` is (null before the first); its state in `#conn`. */
export function followSite(site, token, refresh, shown) {
  return new Live({
    site, token: token.value,
    onEvent: () => refresh(),
    onResync: () => refresh(),
    onStatus: bindConnIndicator($("#conn"), t),
    knownSeq: () => (shown() ? shown().seq : null),
  }).start();
}
