// Library: my pitches, the team's, exemplars by stage, and search results.
import { get } from "./api.js";
import { session, onLeave } from "./state.js";
import { formatMs, h, humanize, poster, progressBar, statusBadge } from "./ui.js";

const BUSY = new Set(["awaiting_upload", "processing", "viewable"]);
const POLL_MS = 2000;

export function clipCard(clip) {
  const busy = clip.status === "processing" || clip.status === "viewable";
  const owner = clip.owner ? clip.owner.name : "";
  return h(
    "li",
    { class: "clip-card", dataset: { clipId: clip.id } },
    h(
      "a",
      { href: `#/clips/${clip.id}`, class: "clip-link" },
      poster(clip.poster_url),
      h("span", { class: "duration", text: formatMs(clip.duration_ms) }),
      h("strong", { class: "title", text: clip.title }),
    ),
    h(
      "div",
      { class: "meta" },
      h("span", { text: owner }),
      h("span", { text: session.stageName(clip.stage) }),
      clip.is_exemplar ? h("span", { class: "badge exemplar", text: "exemplar" }) : null,
      statusBadge(clip),
    ),
    busy ? progressBar(clip.progress || 0, `Processing ${clip.title}`) : null,
    clip.status === "failed" && clip.error ? h("p", { class: "error-text", text: clip.error.message }) : null,
  );
}

// Keeps the cards of unfinished clips current: the live stream says when a clip changes;
// polling follows the transcode's progress (and stands in when the stream is down).
function keepCurrent(list, clips) {
  const byId = new Map(clips.map((c) => [c.id, c]));
  const replace = (clip) => {
    byId.set(clip.id, clip);
    const old = list.querySelector(`[data-clip-id="${CSS.escape(clip.id)}"]`);
    if (old) old.replaceWith(clipCard(clip));
  };
  const refresh = async (id) => {
    try {
      replace(await get(`/v1/clips/${id}`));
    } catch {
      // gone or unreachable: the next poll tries again
    }
  };
  session.listen((type, event) => {
    if (!type.startsWith("clip.")) return;
    const id = event.data && (event.data.id || event.data.clip_id);
    if (id && byId.has(id)) refresh(id);
  });
  const timer = setInterval(() => {
    for (const clip of byId.values()) if (BUSY.has(clip.status) && clip.status !== "awaiting_upload") refresh(clip.id);
  }, POLL_MS);
  onLeave(() => clearInterval(timer));
}

function clipList(clips, emptyText) {
  if (!clips.length) return h("p", { class: "empty", text: emptyText });
  const list = h("ul", { class: "clip-grid" }, clips.map(clipCard));
  keepCurrent(list, clips);
  return list;
}

function tabs(current) {
  const items = [
    ["mine", "My pitches"],
    ["team", "Team"],
    ["exemplars", "Exemplars"],
  ];
  return h(
    "nav",
    { class: "tabs", "aria-label": "Library" },
    items.map(([key, label]) =>
      h("a", { href: `#/library/${key}`, text: label, "aria-current": key === current ? "page" : null }),
    ),
  );
}

async function exemplarsByStage() {
  const sections = await Promise.all(
    session.stages.map(async (stage) => {
      const page = await get("/v1/exemplars", { stage: stage.key, limit: 12 });
      return h(
        "section",
        { class: "stage-section" },
        h("h2", { text: stage.name }),
        page.items.length
          ? h(
              "ul",
              { class: "clip-grid" },
              page.items.map((item) =>
                h(
                  "li",
                  { class: "clip-card" },
                  h(
                    "a",
                    { href: `#/clips/${item.clip.id}`, class: "clip-link" },
                    poster(item.clip.poster_url),
                    h("span", { class: "duration", text: formatMs(item.clip.duration_ms) }),
                    h("strong", { class: "title", text: item.clip.title }),
                  ),
                  h(
                    "div",
                    { class: "meta" },
                    h("span", { text: item.clip.owner.name }),
                    item.endorsed ? h("span", { class: "badge exemplar", text: "endorsed" }) : null,
                    h("span", { text: `score ${item.score.toFixed(2)}` }),
                  ),
                  item.note ? h("p", { class: "note", text: item.note }) : null,
                ),
              ),
            )
          : h("p", { class: "empty", text: "No exemplars for this stage yet." }),
      );
    }),
  );
  return sections;
}

// A search snippet is escaped HTML with <mark> around matches: its pieces become text nodes
// and <mark> elements, so nothing in it is ever parsed as markup.
function snippetNodes(snippet) {
  const decode = (s) =>
    s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&#x27;|&#39;/g, "'").replace(/&amp;/g, "&");
  let marked = false;
  const nodes = [];
  for (const piece of snippet.split(/(<\/?mark>)/)) {
    if (piece === "<mark>") marked = true;
    else if (piece === "</mark>") marked = false;
    else if (piece) nodes.push(marked ? h("mark", { text: decode(piece) }) : decode(piece));
  }
  return nodes;
}

function searchResults(q, page) {
  return h(
    "section",
    {},
    h("h2", { text: `Results for “${q}”` }),
    page.items.length
      ? h(
          "ul",
          { class: "results" },
          page.items.map((hit) => {
            const text = snippetNodes(hit.snippet);
            return h(
              "li",
              {},
              h("a", { href: `#/clips/${hit.clip_id}/at/${hit.timestamp_ms}`, text: `${hit.clip_title} at ${formatMs(hit.timestamp_ms)}` }),
              h("span", { class: "badge", text: humanize(hit.kind) }),
              h("p", { class: "snippet" }, text),
            );
          }),
        )
      : h("p", { class: "empty", text: "Nothing found." }),
  );
}

export async function libraryScreen({ tab, q }) {
  const me = session.me;
  if (tab === "search") {
    const page = await get("/v1/search", { q, limit: 30 });
    return h("div", {}, h("h1", { text: "Search" }), searchResults(q, page));
  }
  let body;
  if (tab === "exemplars") {
    body = await exemplarsByStage();
  } else {
    const params = tab === "mine" ? { owner_id: me.id, limit: 50 } : { kind: "pitch", limit: 50 };
    const page = await get("/v1/clips", params);
    const clips = tab === "team" ? page.items.filter((c) => c.owner_id !== me.id) : page.items;
    body = clipList(clips, tab === "mine" ? "No clips yet: upload your first pitch." : "No pitches from your team yet.");
  }
  const heading = { mine: "My pitches", team: "Team pitches", exemplars: "Exemplars by stage" }[tab];
  return h("div", {}, h("h1", { text: heading }), tabs(tab), h("div", { class: "tab-body" }, body));
}

