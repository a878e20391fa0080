// Notifications, newest first; opening one marks it read; the header shows the unread count.
import { get, post } from "./api.js";
import { session } from "./state.js";
import { attempt, fill, formatDate, formatMs, h } from "./ui.js";

function describe(n) {
  const who = n.actor ? n.actor.name : "Someone";
  const data = n.data || {};
  const title = data.clip_title || (data.clip && data.clip.title) || "your clip";
  switch (n.kind) {
    case "feedback_on_my_clip":
      return `${who} left feedback on ${title}`;
    case "feedback_reply":
      return `${who} replied in a thread on ${title}`;
    case "mention":
      return `${who} mentioned you on ${title}`;
    case "feedback_resolved":
      return `${who} resolved your feedback on ${title}`;
    case "review_requested":
      return `${who} asks for your review of ${title}`;
    case "review_completed":
      return `${who} reviewed ${title}`;
    case "review_declined":
      return `${who} declined to review ${title}`;
    case "pitch_ready":
      return `${title} is ready`;
    case "pitch_analyzed":
      return `Delivery metrics for ${title} are ready`;
    case "pitch_failed":
      return `${title} could not be processed${data.error ? `: ${data.error.message}` : ""}`;
    case "upload_expired":
      return `The upload of ${title} expired: start it again`;
    case "webhook_disabled":
      return "A webhook endpoint was disabled";
    default:
      return n.kind.replace(/_/g, " ");
  }
}

function target(n) {
  if (n.review_request_id && n.kind === "review_requested") return "#/reviews/inbox";
  if (n.review_request_id) return "#/reviews/outbox";
  if (n.clip_id) {
    const at = n.data && typeof n.data.timestamp_ms === "number" ? `/at/${n.data.timestamp_ms}` : "";
    return `#/clips/${n.clip_id}${at}`;
  }
  return "#/notifications";
}

export async function notificationsScreen() {
  const list = h("ul", { class: "notifications" });
  const markAll = h("button", { type: "button", text: "Mark all read" });
  const reload = async () => {
    const page = await get("/v1/notifications", { limit: 50 });
    fill(list,
      ...(page.items.length
        ? page.items.map((n) =>
            h(
              "li",
              { class: n.read_at ? "read" : "unread" },
              h("a", {
                href: target(n),
                text: describe(n),
                onclick: () => {
                  if (!n.read_at) post("/v1/notifications/read", { ids: [n.id] }).then(() => window.dispatchEvent(new Event("peerpitch:unread"))).catch(() => {});
                },
              }),
              n.data && typeof n.data.timestamp_ms === "number" ? h("span", { class: "hint", text: ` at ${formatMs(n.data.timestamp_ms)}` }) : null,
              h("span", { class: "hint", text: ` · ${formatDate(n.created_at)}` }),
              n.read_at ? null : h("span", { class: "badge", text: "new" }),
            ),
          )
        : [h("li", { class: "empty", text: "No notifications." })]),
    );
  };
  markAll.addEventListener("click", () =>
    attempt(async () => {
      await post("/v1/notifications/read", { all: true });
      window.dispatchEvent(new Event("peerpitch:unread"));
      await reload();
    }, markAll),
  );
  session.listen((type) => {
    if (type === "notification.created") reload().catch(() => {});
  });
  await reload();
  return h("div", {}, h("h1", { text: "Notifications" }), markAll, list);
}
