// The live stream (server-sent events) from the browser, and debounced re-reads.
//
// The service sends every committed change as `data: {json}` with `id: seq`. The browser
// reconnects by itself and sends Last-Event-ID, so the server resumes without a gap or
// answers `reset` (its buffer no longer reaches back, e.g. after a restart). A page
// therefore re-reads its snapshot on `reset`, after every reconnect, and (debounced) after
// events; it never tries to patch state from events alone.

/**
 * A function that runs `fn` soon, at most one run at a time, coalescing calls made while
 * one is pending or in flight into one more run.
 */
export function refresher(fn, delayMs = 250) {
  let timer = null;
  let running = false;
  let again = false;
  const run = async () => {
    timer = null;
    if (running) { again = true; return; }
    running = true;
    try { await fn(); } catch (exc) { console.warn("refresh failed", exc); }
    running = false;
    if (again) { again = false; schedule(); }
  };
  const schedule = (now = false) => {
    if (running) { again = true; return; }
    if (timer !== null) {
      if (!now) return;
      clearTimeout(timer);
    }
    timer = setTimeout(run, now ? 0 : delayMs);
  };
  return schedule;
}

export class Live {
  /**
   * site: site id; token: staff token (adds ticket ids) or null for the public stream;
   * onEvent(event): each change; onResync(): re-read everything; onStatus("live"|"reconnecting");
   * knownSeq(): the seq of the data the page shows (skips a needless first re-read).
   */
  constructor({ site, token = null, onEvent = () => {}, onResync = () => {}, onStatus = () => {}, knownSeq = null }) {
    Object.assign(this, { site, token, onEvent, onResync, onStatus, knownSeq });
    this.es = null;
    this.lastId = null;
    this.opened = false;
    this.failures = 0;
    this.reopenTimer = null;
    this.stopped = false;
  }

  url() {
    const params = new URLSearchParams();
    if (this.token) params.set("access_token", this.token);
    // A stream we reopen ourselves cannot send the header; the server takes the query too.
    if (this.lastId !== null) params.set("last_event_id", this.lastId);
    const query = params.toString();
    return `/api/v1/sites/${encodeURIComponent(this.site)}/stream${query ? `?${query}` : ""}`;
  }

  start() {
    this.stopped = false;
    this.open();
    return this;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.reopenTimer);
    if (this.es) this.es.close();
    this.es = null;
  }

  open() {
    if (this.stopped) return;
    const es = new EventSource(this.url());
    this.es = es;
    es.onopen = () => {
      this.failures = 0;
      this.onStatus("live");
      // Events may have been missed while away: re-read (the backlog also arrives).
      if (this.opened) this.onResync();
      this.opened = true;
    };
    es.onmessage = (message) => {
      if (message.lastEventId) this.lastId = message.lastEventId;
      let data;
      try { data = JSON.parse(message.data); } catch { return; }
      if (data.type === "reset") { this.onResync(); return; }
      if (data.type === "hello") {
        const known = this.knownSeq ? this.knownSeq() : null;
        if (known === null || known === undefined || data.seq > known) this.onResync();
        return;
      }
      this.onEvent(data);
    };
    es.onerror = () => {
      this.onStatus("reconnecting");
      // CONNECTING: the browser retries by itself. CLOSED: it gave up (an HTTP error from
      // a proxy, say): reopen ourselves with a growing delay.
      if (es.readyState === EventSource.CLOSED && !this.stopped) {
        es.close();
        this.failures += 1;
        const delay = Math.min(1000 * 2 ** Math.min(this.failures, 5), 30000);
        clearTimeout(this.reopenTimer);
        this.reopenTimer = setTimeout(() => this.open(), delay * (0.75 + Math.random() / 2));
      }
    };
  }
}

/** Show the stream's state in an element with class "conn" (data-state + text). */
export function bindConnIndicator(el, t) {
  return (state) => {
    if (!el) return;
    el.dataset.state = state;
    el.textContent = state === "live" ? t("conn.live") : t("conn.reconnecting");
  };
}
