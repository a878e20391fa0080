// The prep kit for a stage: its best exemplars (playable here), the most helpful tips, and my
// open feedback, as a phone would fetch it minutes before a meeting.
import { get } from "./api.js";
import { mountPlayer } from "./player.js";
import { navigate, onLeave } from "./state.js";
import { attempt, field, fill, formatMs, h, poster, showError } from "./ui.js";

function feedbackItem(f) {
  return h(
    "li",
    { class: "tip" },
    h("a", { href: `#/clips/${f.clip_id}/at/${f.timestamp_ms}`, text: `${f.clip_title} at ${formatMs(f.timestamp_ms)}` }),
    h("p", { class: "body", text: f.body + (f.truncated ? "…" : "") }),
    h("span", { class: "hint", text: `${f.author_name}${f.helpful_count ? ` · ${f.helpful_count} found this helpful` : ""}` }),
  );
}

export async function prepScreen(stageKey) {
  const kit = await get("/v1/prep", { stage: stageKey || undefined, limit: 6 });
  const select = h(
    "select",
    { name: "stage" },
    kit.stages.map((s) => h("option", { value: s.key, selected: s.key === kit.stage, text: s.my_open_feedback ? `${s.name} (${s.my_open_feedback} open)` : s.name })),
  );
  select.addEventListener("change", () => navigate(`/prep/${select.value}`));
  const players = [];
  onLeave(() => players.forEach((p) => p.destroy()));
  const exemplars = kit.exemplars.map((e) => {
    const slot = h("div", { class: "prep-slot" }, poster(e.poster_url, ""));
    const play = h("button", {
      type: "button",
      text: "Play",
      "aria-label": `Play ${e.title}`,
      onclick: () =>
        attempt(async () => {
          const video = h("video", { controls: true, playsinline: true, "aria-label": `Exemplar: ${e.title}` });
          fill(slot, video);
          players.push(await mountPlayer(video, e.clip_id, { onError: showError }));
          video.play().catch(() => {});
          play.remove();
        }, play),
    });
    return h(
      "li",
      { class: "card prep-exemplar" },
      slot,
      h("a", { href: `#/clips/${e.clip_id}`, text: e.title }),
      h("p", { class: "hint", text: `${e.owner_name} · ${formatMs(e.duration_ms)}` }),
      e.note ? h("p", { class: "note", text: e.note }) : null,
      h("div", { class: "row" }, play, e.mp4_url ? h("a", { href: e.mp4_url, download: "", text: "Download for offline" }) : null),
    );
  });
  const d = kit.delivery;
  const delivery =
    d && d.mine
      ? h(
          "p",
          { class: "hint" },
          `Your last pitch: speaking ${Math.round(d.mine.speaking_ratio * 100)}%` +
            (d.exemplar_median && d.exemplar_median.speaking_ratio !== null ? ` (exemplars: ${Math.round(d.exemplar_median.speaking_ratio * 100)}%)` : "") +
            `, ${d.mine.pause_count} long pauses.`,
        )
      : null;
  return h(
    "div",
    { class: "prep" },
    h("h1", { text: "Prep kit" }),
    field("Stage", select),
    delivery,
    h("section", {}, h("h2", { text: "Exemplars" }), exemplars.length ? h("ul", { class: "prep-grid" }, exemplars) : h("p", { class: "empty", text: "No exemplars for this stage yet." })),
    h("section", {}, h("h2", { text: "Tips" }), kit.tips.length ? h("ul", { class: "tips" }, kit.tips.map(feedbackItem)) : h("p", { class: "empty", text: "No tips yet." })),
    h("section", {}, h("h2", { text: "My open feedback" }), kit.my_open_feedback.length ? h("ul", { class: "tips" }, kit.my_open_feedback.map(feedbackItem)) : h("p", { class: "empty", text: "Nothing open: well done." })),
  );
}
