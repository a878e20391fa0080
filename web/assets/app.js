// The peerpitch web app: a hash-routed single page over the public /v1 API.
import { get, isSignedIn, onSignedOut, signIn, signOut, streamEvents } from "./api.js";
import { attempt, clearMessage, field, fill, h, showError } from "./ui.js";
import { leaving, navigate, session } from "./state.js";
import { libraryScreen } from "./library.js";
import { uploadScreen } from "./upload.js";
import { clipScreen } from "./clip.js";
import { reviewsScreen } from "./reviews.js";
import { profileScreen } from "./profile.js";
import { prepScreen } from "./prep.js";
import { notificationsScreen } from "./notifications.js";

const root = document.getElementById("app");

let stopStream = null;
let unreadTimer = null;

const ROUTES = [
  [/^\/?$/, () => libraryScreen({ tab: "mine" })],
  [/^\/library\/(mine|team|exemplars)$/, (m) => libraryScreen({ tab: m[1] })],
  [/^\/search\/(.+)$/, (m) => libraryScreen({ tab: "search", q: decodeURIComponent(m[1]) })],
  [/^\/upload$/, () => uploadScreen()],
  [/^\/clips\/([\w-]+)(?:\/at\/(\d+))?$/, (m) => clipScreen(m[1], m[2] ? Number(m[2]) : null)],
  [/^\/reviews(?:\/(inbox|outbox))?$/, (m) => reviewsScreen(m[1] || "inbox")],
  [/^\/profile(?:\/([\w-]+))?$/, (m) => profileScreen(m[1] || session.me.id)],
  [/^\/prep(?:\/([\w-]+))?$/, (m) => prepScreen(m[1] || null)],
  [/^\/notifications$/, () => notificationsScreen()],
];


function signInScreen() {
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const button = h("button", { type: "submit", class: "primary", text: "Sign in" });
  const form = h(
    "form",
    { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title", text: "Sign in to peerpitch" }),
    field("Email", email),
    field("Password", password),
    button,
    h("p", { class: "hint", text: "On a fresh `make run`, the Demo org's logins use the password peerpitch-demo (rep@demo.peerpitch.dev, top@…, coach@…, admin@…)." }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(async () => {
      await signIn(email.value.trim(), password.value);
      password.value = "";
      await start();
    }, button);
  });
  fill(root, h("main", { class: "centered" }, h("div", { id: "message", class: "message", role: "alert" }), form));
  email.focus();
}

const NAV = [
  ["#/", "Library"],
  ["#/upload", "Upload clip"],
  ["#/reviews", "Reviews"],
  ["#/profile", "Skills"],
  ["#/prep", "Prep kit"],
];

function shell() {
  const badge = h("span", { class: "count", id: "unread", "aria-hidden": "true" });
  const notifications = h("a", { href: "#/notifications", id: "nav-notifications", "aria-label": "Notifications" }, "Notifications ", badge);
  const signOutButton = h("button", { type: "button", class: "link", text: "Sign out" });
  signOutButton.addEventListener("click", () => attempt(() => signOut(), signOutButton));
  const searchInput = h("input", { type: "search", name: "q", placeholder: "Search transcripts and feedback", "aria-label": "Search" });
  const search = h("form", { class: "search", role: "search" }, searchInput, h("button", { type: "submit", text: "Search" }));
  search.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = searchInput.value.trim();
    if (q) navigate("/search/" + encodeURIComponent(q));
  });
  fill(root,
    h("a", { class: "skip", href: "#main", text: "Skip to content", onclick: (e) => { e.preventDefault(); document.getElementById("main").focus(); } }),
    h(
      "header",
      { class: "top" },
      h("a", { class: "brand", href: "#/", text: "peerpitch" }),
      h("nav", { "aria-label": "Main" }, NAV.map(([href, label]) => h("a", { href, text: label })), notifications),
      search,
      h("div", { class: "who" }, h("span", { class: "user-name", id: "user-name", text: session.me.name }), h("span", { class: "role", text: session.me.role.replace("_", " ") }), signOutButton),
    ),
    h("div", { id: "message", class: "message", role: "alert", "aria-live": "assertive" }),
    h("main", { id: "main", tabindex: "-1" }),
  );
}

async function refreshUnread() {
  const badge = document.getElementById("unread");
  const link = document.getElementById("nav-notifications");
  if (!badge || !isSignedIn()) return;
  try {
    const { unread } = await get("/v1/notifications/unread-count");
    badge.textContent = unread ? String(unread) : "";
    badge.hidden = !unread;
    link.setAttribute("aria-label", unread ? `Notifications, ${unread} unread` : "Notifications");
  } catch {
    // the badge waits for the next try
  }
}

async function render() {
  for (const cleanup of leaving.splice(0)) {
    try {
      cleanup();
    } catch {
      // a screen's cleanup never blocks the next screen
    }
  }
  const main = document.getElementById("main");
  if (!main) return;
  clearMessage();
  const path = location.hash.replace(/^#/, "") || "/";
  for (const link of document.querySelectorAll("header nav a")) {
    const href = link.getAttribute("href").slice(1);
    const current = href === "/" ? path === "/" || path.startsWith("/library") : path.startsWith(href);
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  for (const [pattern, screen] of ROUTES) {
    const match = path.match(pattern);
    if (match) {
      fill(main, h("p", { class: "loading", text: "Loading…" }));
      try {
        const content = await screen(match);
        if (location.hash.replace(/^#/, "") === path || (path === "/" && !location.hash)) {
          fill(main, content);
        }
      } catch (error) {
        fill(main, h("p", { class: "empty", text: "This page could not be loaded." }));
        showError(error);
      }
      return;
    }
  }
  fill(main, h("p", { class: "empty", text: "No such page." }));
}

async function start() {
  try {
    [session.me, session.stages] = await Promise.all([get("/v1/me"), get("/v1/stages")]);
  } catch (error) {
    if (!isSignedIn()) return signInScreen();
    fill(root, h("main", { class: "centered" }, h("p", { class: "message error", role: "alert", text: error.message })));
    return;
  }
  shell();
  stopStream = streamEvents(
    (type, event) => {
      if (type === "notification.created") refreshUnread();
      for (const listener of session.listeners) listener(type, event);
    },
    (live) => {
      session.live = live;
    },
  );
  refreshUnread();
  clearInterval(unreadTimer);
  unreadTimer = setInterval(refreshUnread, 30000);
  await render();
}

onSignedOut(() => {
  if (stopStream) stopStream();
  stopStream = null;
  clearInterval(unreadTimer);
  for (const cleanup of leaving.splice(0)) cleanup();
  session.me = null;
  signInScreen();
});

// Screens that read notifications ask the badge to catch up.
window.addEventListener("peerpitch:unread", () => refreshUnread());

window.addEventListener("hashchange", () => {
  if (session.me) render();
});

if (isSignedIn()) start();
else signInScreen();
