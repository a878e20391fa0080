// A person's skill profile per stage: review scores (plain and recency-weighted), feedback
// per skill, and the 90-day trend as a small SVG chart (no chart library).
import { get } from "./api.js";
import { navigate, session } from "./state.js";
import { field, h, humanize, svg } from "./ui.js";

const W = 180;
const H = 60;
const PAD = 8;

// Score averages (1..5) of the trend's windows as a line; windows without scores are gaps.
export function trendChart(skill) {
  const windows = skill.trend.windows;
  const x = (i) => PAD + (windows.length > 1 ? (i * (W - 2 * PAD)) / (windows.length - 1) : (W - 2 * PAD) / 2);
  const y = (v) => H - PAD - ((v - 1) / 4) * (H - 2 * PAD);
  const points = windows.map((w, i) => (w.score_average === null ? null : [x(i), y(w.score_average)]));
  const segments = [];
  let run = [];
  for (const p of points) {
    if (p) run.push(p);
    else if (run.length) {
      segments.push(run);
      run = [];
    }
  }
  if (run.length) segments.push(run);
  const described = windows.map((w, i) => `window ${i + 1}: ${w.score_average === null ? "no scores" : w.score_average.toFixed(1)}`).join(", ");
  return svg(
    "svg",
    { class: "trend", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${skill.name} trend, ${described}` },
    svg("line", { x1: PAD, y1: y(1), x2: W - PAD, y2: y(1), class: "axis" }),
    svg("line", { x1: PAD, y1: y(5), x2: W - PAD, y2: y(5), class: "grid" }),
    svg("line", { x1: PAD, y1: y(3), x2: W - PAD, y2: y(3), class: "grid" }),
    segments.map((s) => svg("polyline", { points: s.map((p) => p.join(",")).join(" "), class: "line" })),
    points.filter(Boolean).map(([cx, cy]) => svg("circle", { cx, cy, r: 3, class: "dot" })),
  );
}

const fmt = (v) => (v === null || v === undefined ? "–" : v.toFixed(1));

function skillRow(skill) {
  const dir = skill.trend.direction;
  return h(
    "tr",
    { dataset: { skill: skill.key } },
    h("th", { scope: "row", text: skill.name }),
    h("td", { class: "score", text: fmt(skill.scores.weighted_average) }),
    h("td", { text: fmt(skill.scores.average) }),
    h("td", { text: String(skill.scores.count) }),
    h("td", { text: `${skill.feedback.open} open / ${skill.feedback.resolved} resolved` }),
    h("td", {}, trendChart(skill), dir ? h("span", { class: `badge trend-${dir}`, text: dir }) : null),
  );
}

export async function profileScreen(userId) {
  const me = session.me;
  const profile = await get(`/v1/users/${userId}/skills`);
  let picker = null;
  if (me.role === "coach" || me.role === "admin") {
    const select = h("select", { name: "person" });
    const page = await get("/v1/people", { limit: 100 });
    for (const p of page.items) select.append(h("option", { value: p.id, text: `${p.name} (${humanize(p.role)})`, selected: p.id === userId }));
    select.addEventListener("change", () => navigate(`/profile/${select.value}`));
    picker = field("Person", select);
  }
  return h(
    "div",
    { class: "profile" },
    h("h1", { text: `Skills of ${profile.user.name}` }),
    picker,
    profile.stages.map((stage) =>
      h(
        "section",
        { class: "card stage-profile" },
        h("h2", { text: stage.name }),
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            {},
            h(
              "thead",
              {},
              h("tr", {}, ["Skill", "Weighted score", "Average", "Reviews", "Feedback", "Trend (90 days)"].map((t) => h("th", { scope: "col", text: t }))),
            ),
            h("tbody", {}, stage.skills.map(skillRow)),
          ),
        ),
        stage.delivery && stage.delivery.pitches
          ? h("p", { class: "hint", text: `Delivery over ${stage.delivery.pitches} analysed pitch(es): speaking ratio ${fmt(stage.delivery.trends.speaking_ratio.latest)}, ${humanize(stage.delivery.trends.speaking_ratio.direction || "steady")}.` })
          : null,
      ),
    ),
  );
}
