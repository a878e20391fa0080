// Reviews: the inbox (requests to me, with the rubric: 1-5 per skill of the clip's stage and a
// summary) and the outbox (requests I made, or about my clips). Requests start on a clip page.
import { get, post } from "./api.js";
import { session } from "./state.js";
import { attempt, field, fill, formatDate, h, humanize, showInfo } from "./ui.js";

function requestHead(r, box) {
  const who = box === "inbox" ? `from ${r.requester.name}` : `to ${r.reviewer.name}`;
  return h(
    "div",
    { class: "review-head" },
    h("a", { href: `#/clips/${r.clip.id}`, text: r.clip.title }),
    h("span", { text: ` ${who}` }),
    h("span", { class: "badge", text: session.stageName(r.clip.stage) }),
    h("span", { class: `badge review-${r.status}`, text: r.status }),
    r.overdue ? h("span", { class: "badge flag", text: "overdue" }) : null,
    r.due_at ? h("span", { class: "hint", text: `due ${formatDate(r.due_at)}` }) : null,
  );
}

function scoresList(r) {
  const entries = Object.entries(r.scores || {});
  if (!entries.length && !r.summary && !r.decline_reason) return null;
  return h(
    "div",
    { class: "scores" },
    entries.length ? h("ul", {}, entries.map(([k, v]) => h("li", { text: `${session.skillName(r.clip.stage, k)}: ${v} / 5` }))) : null,
    r.summary ? h("p", { class: "summary", text: r.summary }) : null,
    r.decline_reason ? h("p", { class: "summary", text: `Declined: ${r.decline_reason}` }) : null,
  );
}

function rubric(r, reload) {
  const selects = session.skillsOf(r.clip.stage).map((skill) => {
    const select = h(
      "select",
      { name: skill.key },
      h("option", { value: "", text: "Not scored" }),
      [1, 2, 3, 4, 5].map((n) => h("option", { value: String(n), text: String(n) })),
    );
    return [skill, select];
  });
  const summary = h("textarea", { name: "summary", rows: 3, maxlength: 5000 });
  const complete = h("button", { type: "submit", class: "primary", text: "Complete review" });
  const reason = h("input", { type: "text", name: "reason", maxlength: 500 });
  const decline = h("button", { type: "button", text: "Decline" });
  const form = h(
    "form",
    { class: "rubric" },
    h("fieldset", {}, h("legend", { text: "Scores (1 to 5)" }), selects.map(([skill, select]) => field(`${skill.name} score`, select))),
    field("Summary", summary),
    h("div", { class: "row" }, complete, field("Reason to decline", reason), decline),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(async () => {
      const scores = {};
      for (const [skill, select] of selects) if (select.value) scores[skill.key] = Number(select.value);
      await post(`/v1/review-requests/${r.id}/complete`, { scores, summary: summary.value });
      showInfo("Review sent.");
      await reload();
    }, complete);
  });
  decline.addEventListener("click", () =>
    attempt(async () => {
      await post(`/v1/review-requests/${r.id}/decline`, { reason: reason.value });
      await reload();
    }, decline),
  );
  return form;
}

export async function reviewsScreen(box) {
  const list = h("div", { class: "review-list" });
  const reload = async () => {
    const page = await get("/v1/review-requests", { box, limit: 50 });
    fill(list,
      page.items.length
        ? h(
            "ul",
            {},
            page.items.map((r) =>
              h(
                "li",
                { class: "card review", dataset: { requestId: r.id } },
                requestHead(r, box),
                r.message ? h("p", { class: "message-text", text: r.message }) : null,
                scoresList(r),
                box === "inbox" && r.status === "pending" ? rubric(r, reload) : null,
              ),
            ),
          )
        : h("p", { class: "empty", text: box === "inbox" ? "Nobody has asked you for a review." : "You have not asked for reviews yet: open one of your clips and ask a colleague." }),
    );
  };
  await reload();
  return h(
    "div",
    {},
    h("h1", { text: "Reviews" }),
    h(
      "nav",
      { class: "tabs", "aria-label": "Reviews" },
      ["inbox", "outbox"].map((key) => h("a", { href: `#/reviews/${key}`, text: humanize(key), "aria-current": key === box ? "page" : null })),
    ),
    list,
  );
}
