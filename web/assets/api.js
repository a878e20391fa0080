// The /v1 API client: bearer tokens (refreshed once when the access token expires), the
// error envelope as ApiError, and the live event stream. Tokens live in localStorage only:
// never in a URL and never in a log line.

const meta = document.querySelector('meta[name="peerpitch-api"]');
export const API_BASE = (meta && meta.content.trim().replace(/\/$/, "")) || location.origin;

const TOKENS = "peerpitch.tokens";

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message || "Something went wrong.");
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

function loadTokens() {
  try {
    return JSON.parse(localStorage.getItem(TOKENS) || "null");
  } catch {
    return null;
  }
}

let tokens = loadTokens();
let refreshing = null;
const signedOutListeners = new Set();

export function isSignedIn() {
  return Boolean(tokens && tokens.refresh_token);
}

export function onSignedOut(listener) {
  signedOutListeners.add(listener);
}

function saveTokens(pair) {
  tokens = pair ? { access_token: pair.access_token, refresh_token: pair.refresh_token } : null;
  if (tokens) localStorage.setItem(TOKENS, JSON.stringify(tokens));
  else localStorage.removeItem(TOKENS);
}

function forget() {
  saveTokens(null);
  for (const listener of signedOutListeners) listener();
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy's page, a network cut
  }
  const error = body && body.error;
  if (error) return new ApiError(response.status, error.code, error.message, error.details);
  return new ApiError(response.status, "http_" + response.status, `The server answered ${response.status}.`);
}

// One refresh at a time, shared by every request that found its token expired (another tab
// may have refreshed already: the storage then holds a newer pair).
function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      const stored = loadTokens();
      if (stored && tokens && stored.access_token !== tokens.access_token) {
        tokens = stored;
        return;
      }
      if (!tokens) throw new ApiError(401, "signed_out", "Please sign in.");
      const response = await fetch(API_BASE + "/v1/auth/refresh", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: tokens.refresh_token }),
      });
      if (!response.ok) {
        const error = await errorOf(response);
        forget();
        throw error;
      }
      saveTokens(await response.json());
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === "") continue;
    search.set(key, String(value));
  }
  const text = search.toString();
  return text ? "?" + text : "";
}

// Calls the API; answers parsed JSON (null for 204). Throws ApiError with the envelope's message.
export async function api(method, path, { body, params, headers, retried } = {}) {
  const init = { method, headers: { Accept: "application/json", ...(headers || {}) } };
  if (tokens) init.headers.Authorization = "Bearer " + tokens.access_token;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(API_BASE + path + query(params), init);
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached. Check your connection.");
  }
  if (response.status === 401 && tokens && !retried) {
    const error = await errorOf(response);
    if (error.code === "token_expired" || error.code === "token_revoked") {
      await refresh();
      return api(method, path, { body, params, headers, retried: true });
    }
    forget();
    throw error;
  }
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response.text();
}

export const get = (path, params) => api("GET", path, { params });
export const post = (path, body, options = {}) => api("POST", path, { body, ...options });
export const patch = (path, body) => api("PATCH", path, { body });
export const del = (path) => api("DELETE", path);

export function idempotencyKey() {
  return crypto.randomUUID();
}

export async function signIn(email, password) {
  const response = await fetch(API_BASE + "/v1/auth/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password }),
  }).catch(() => {
    throw new ApiError(0, "network", "The server cannot be reached. Check your connection.");
  });
  if (!response.ok) throw await errorOf(response);
  saveTokens(await response.json());
}

export async function signOut() {
  try {
    if (tokens) await post("/v1/auth/logout");
  } catch {
    // signed out locally whatever the server said
  }
  forget();
}

// The live stream (GET /v1/events/stream) read with fetch, since EventSource cannot send an
// Authorization header and the token must not go into the URL. Reconnects with Last-Event-ID.
export function streamEvents(onEvent, onState) {
  let stopped = false;
  let lastId = null;
  let controller = null;
  let delay = 1000;

  async function once() {
    controller = new AbortController();
    const headers = { Accept: "text/event-stream", Authorization: "Bearer " + tokens.access_token };
    if (lastId) headers["Last-Event-ID"] = lastId;
    const response = await fetch(API_BASE + "/v1/events/stream", { headers, signal: controller.signal });
    if (response.status === 401) {
      await refresh();
      return;
    }
    if (!response.ok || !response.body) throw await errorOf(response);
    onState && onState(true);
    delay = 1000;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const message = { event: "message", data: "" };
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "id") message.id = text;
          else if (field === "event") message.event = text;
          else if (field === "data") message.data += (message.data ? "\n" : "") + text;
        }
        if (message.id) lastId = message.id;
        if (message.event === "auth_expired") {
          await refresh();
          controller.abort();
          return;
        }
        if (message.data) {
          try {
            onEvent(message.event, JSON.parse(message.data));
          } catch {
            // a malformed message is skipped, the stream goes on
          }
        }
      }
    }
  }

  (async () => {
    while (!stopped && isSignedIn()) {
      try {
        await once();
      } catch {
        // network or server trouble: reconnect after a pause
      }
      onState && onState(false);
      if (stopped) break;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 30000);
    }
  })();

  return () => {
    stopped = true;
    if (controller) controller.abort();
  };
}
