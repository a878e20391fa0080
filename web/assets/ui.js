// DOM helpers. Every string from the API goes in as text (textContent / attributes), never as
// HTML, so a feedback body or a title cannot inject markup.

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2).toLowerCase(), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (key === "text") el.textContent = value;
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) if (child) el.append(child);
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

// The page's one message area: errors show the API envelope's message.
let messageTimer = null;
export function showError(error) {
  const box = document.getElementById("message");
  if (!box) return;
  box.className = "message error";
  box.textContent = (error && error.message) || String(error);
  clearTimeout(messageTimer);
}

export function showInfo(text) {
  const box = document.getElementById("message");
  if (!box) return;
  box.className = "message info";
  box.textContent = text;
  clearTimeout(messageTimer);
  messageTimer = setTimeout(() => {
    if (box.textContent === text) {
      box.textContent = "";
      box.className = "message";
    }
  }, 5000);
}

export function clearMessage() {
  const box = document.getElementById("message");
  if (box) {
    box.textContent = "";
    box.className = "message";
  }
}

// Runs an action, showing its error instead of throwing; disables the button meanwhile.
export async function attempt(action, button) {
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (error) {
    showError(error);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

export function formatMs(ms) {
  if (ms === null || ms === undefined) return "–";
  const total = Math.max(0, Math.floor(ms / 1000));
  const m = Math.floor(total / 60);
  const s = String(total % 60).padStart(2, "0");
  return `${m}:${s}`;
}

export function formatPreciseMs(ms) {
  const tenths = Math.floor((ms % 1000) / 100);
  return `${formatMs(ms)}.${tenths}`;
}

export function formatDate(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function humanize(key) {
  return String(key || "").replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
}

export const STATUS_LABELS = {
  awaiting_upload: "awaiting upload",
  processing: "processing",
  viewable: "viewable",
  ready: "ready",
  failed: "failed",
};

export function statusBadge(clip) {
  const label = STATUS_LABELS[clip.status] || clip.status;
  const busy = clip.status === "processing" || clip.status === "viewable";
  const percent = busy ? ` ${Math.round((clip.progress || 0) * 100)}%` : "";
  return h("span", { class: `badge status-${clip.status}`, dataset: { status: clip.status } }, label + percent);
}

export function progressBar(value, label) {
  return h("progress", { max: 100, value: Math.round(value * 100), "aria-label": label });
}

export function field(label, control, hint) {
  const id = control.id || "f-" + Math.random().toString(36).slice(2, 9);
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id, text: label }), control, hint ? h("small", { text: hint }) : null);
}

export function poster(url, alt) {
  if (!url) return h("div", { class: "poster empty", "aria-hidden": "true" });
  return h("img", { class: "poster", src: url, alt: alt || "", loading: "lazy", referrerpolicy: "no-referrer" });
}

// Replaces an element's children; like append, it skips null/false and flattens arrays.
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}
