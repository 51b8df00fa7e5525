// The Antrian JSON API from the browser: typed errors, timeouts and safe retries.
//
// Every error the service sends is {code, message, details}; it is thrown as an ApiError
// carrying all three and the HTTP status. A write is retried only with an Idempotency-Key,
// and always with the SAME key, so a request the server did handle (but whose answer was
// lost) is answered from the server's record instead of being done twice.

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message || code);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
  get conflict() { return this.status === 409; }
  get auth() { return this.status === 401 || this.status === 403; }
  get notFound() { return this.status === 404; }
}

/** The request never got an answer (network down, server restarting, timeout). */
export class NetworkError extends Error {
  constructor(message, cause) {
    super(message);
    this.name = "NetworkError";
    this.cause = cause;
  }
}

const RETRY_STATUS = new Set([502, 503, 504]);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A fresh idempotency key. crypto.randomUUID exists only in secure contexts (https or
 *  localhost); a kiosk on a hall LAN over plain http still has getRandomValues. */
export function newKey() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function backoff(attempt, retryAfter) {
  if (retryAfter && Number.isFinite(retryAfter)) return Math.min(retryAfter * 1000, 5000);
  const base = Math.min(250 * 2 ** attempt, 4000);
  return base / 2 + Math.random() * (base / 2);
}

async function errorFrom(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  if (body && typeof body.code === "string") {
    return new ApiError(response.status, body.code, body.message, body.details);
  }
  return new ApiError(response.status, "http_error", `HTTP ${response.status} ${response.statusText}`);
}

/**
 * Call the API. Options: method, body (JSON), token (bearer), key (Idempotency-Key),
 * attempts (default: 3 for reads, 6 for keyed writes, 1 for unkeyed writes), timeoutMs
 * (default 8000; a request whose server work is longer, e.g. issuing and printing a
 * ticket, must give more, or every attempt is abandoned and retried while still running).
 * Resolves to the parsed JSON body; rejects with ApiError or NetworkError.
 */
export async function api(path, options = {}) {
  const method = (options.method || "GET").toUpperCase();
  const read = method === "GET" || method === "HEAD";
  const attempts = options.attempts ?? (read ? 3 : options.key ? 6 : 1);
  const headers = { Accept: "application/json" };
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  if (options.key) headers["Idempotency-Key"] = options.key;
  let payload;
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(options.body);
  }
  let lastError = null;
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (attempt > 0) await sleep(backoff(attempt - 1, lastError && lastError.retryAfter));
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), options.timeoutMs ?? 8000);
    let response;
    try {
      response = await fetch(path, { method, headers, body: payload, signal: abort.signal, cache: "no-store" });
    } catch (exc) {
      lastError = new NetworkError("network error", exc);
      continue;
    } finally {
      clearTimeout(timer);
    }
    if (response.ok) {
      if (response.status === 204) return null;
      return response.json();
    }
    const error = await errorFrom(response);
    if (RETRY_STATUS.has(response.status) && (read || options.key)) {
      error.retryAfter = Number(response.headers.get("Retry-After"));
      lastError = error;
      continue;
    }
    throw error;
  }
  throw lastError || new NetworkError("no attempt made");
}

export const siteUrl = (site, rest = "") => `/api/v1/sites/${encodeURIComponent(site)}${rest}`;
export const ticketUrl = (id, rest = "") => `/api/v1/tickets/${encodeURIComponent(id)}${rest}`;
