// The clip page: player with feedback markers on its timeline, comment at the playhead with a
// skill, a range and a drawing; threads with replies, resolve and helpful; the exemplars this
// clip links to (side by side); delivery metrics; asking a colleague for a review.
import { get, del, idempotencyKey, post } from "./api.js";
import { createOverlay } from "./draw.js";
import { mountPlayer } from "./player.js";
import { onLeave, session } from "./state.js";
import { attempt, field, fill, formatDate, formatMs, formatPreciseMs, h, humanize, poster, progressBar, showError, showInfo, statusBadge } from "./ui.js";

const PLAYABLE = new Set(["viewable", "ready"]);
const OVERSEERS = new Set(["coach", "admin"]);
const SHOW_DRAWING_MS = 2000; // a point note's drawing stays this long after its moment

export async function clipScreen(clipId, atMs) {
  let clip = await get(`/v1/clips/${clipId}`);
  const me = session.me;
  const video = h("video", { controls: true, playsinline: true, preload: "auto", "aria-label": `Player: ${clip.title}`, crossorigin: "anonymous" });
  const overlay = createOverlay();
  const stageBox = h("div", { class: "player" }, video, overlay.el);
  const waiting = h("div", { class: "player-wait", role: "status" });
  const timeline = h("div", { class: "timeline", role: "group", "aria-label": "Feedback on the timeline" });
  const playhead = h("div", { class: "playhead", "aria-hidden": "true" });
  const threadsBox = h("section", { class: "threads", "aria-labelledby": "threads-title" });
  const header = h("div", { class: "clip-head" });
  const compare = h("div", { class: "compare" });
  let player = null;
  let threads = [];

  const duration = () => clip.duration_ms || Math.round((video.duration || 0) * 1000) || 1;

  function renderHeader() {
    fill(header,
      h("h1", { text: clip.title }),
      h(
        "p",
        { class: "meta" },
        h("span", { text: clip.owner.name }),
        h("span", { text: session.stageName(clip.stage) }),
        clip.skills.map((s) => h("span", { class: "badge skill", text: session.skillName(clip.stage, s) })),
        h("span", { text: formatMs(clip.duration_ms) }),
        h("span", { class: "clip-status", id: "clip-status" }, statusBadge(clip)),
      ),
      clip.status === "processing" || clip.status === "viewable" ? progressBar(clip.progress || 0, "Processing progress") : null,
      clip.description ? h("p", { text: clip.description }) : null,
      clip.status === "failed" && clip.error ? h("p", { class: "error-text", text: clip.error.message }) : null,
    );
  }

  async function startPlayer() {
    if (player || !PLAYABLE.has(clip.status)) {
      if (!PLAYABLE.has(clip.status)) {
        waiting.textContent =
          clip.status === "failed" ? "This clip could not be processed." : "The clip is being processed; it plays as soon as its first seconds are ready.";
      }
      return;
    }
    waiting.textContent = "";
    player = await mountPlayer(video, clipId, { onError: showError });
    if (atMs !== null && atMs !== undefined) {
      video.addEventListener("loadedmetadata", () => (video.currentTime = atMs / 1000), { once: true });
    }
  }

  // Status: the live stream says when the clip changes; polling follows the progress.
  const refreshClip = async () => {
    const before = clip.status;
    clip = await get(`/v1/clips/${clipId}`);
    renderHeader();
    if (before !== clip.status) {
      await startPlayer();
      if (clip.status === "ready" && before !== "ready") loadSide();
    }
  };
  session.listen((type, event) => {
    const data = event.data || {};
    if (type === "clip.speech_analyzed" && data.id === clipId) {
      loadSide().catch(() => {});
      if (player) player.addCaptions().catch(() => {});
    } else if (type.startsWith("clip.") && data.id === clipId) refreshClip().catch(() => {});
    if (type.startsWith("feedback.") && (data.clip_id === clipId)) loadThreads().catch(() => {});
  });
  const poll = setInterval(() => {
    if (clip.status === "processing" || clip.status === "viewable") refreshClip().catch(() => {});
  }, 2000);
  onLeave(() => {
    clearInterval(poll);
    if (player) player.destroy();
  });

  // -- timeline and drawings at the playhead --------------------------------------------------
  function renderTimeline() {
    const total = duration();
    fill(timeline,
      h("div", { class: "track", "aria-hidden": "true" }),
      playhead,
      threads.map((t) => {
        const label = `Feedback at ${formatMs(t.timestamp_ms)} by ${t.author.name}: ${t.deleted ? "deleted" : t.body.slice(0, 60)}`;
        const marker = h("button", {
          type: "button",
          class: `marker${t.resolved_at ? " resolved" : ""}${t.end_ms ? " range" : ""}`,
          "aria-label": label,
          title: label,
          dataset: { feedbackId: t.id },
          onclick: () => seek(t),
        });
        // Through the CSSOM: the page's CSP allows no inline style attributes.
        marker.style.left = `${Math.min(100, (t.timestamp_ms / total) * 100)}%`;
        if (t.end_ms) marker.style.width = `${Math.max(1, ((t.end_ms - t.timestamp_ms) / total) * 100)}%`;
        return marker;
      }),
    );
  }

  function seek(thread) {
    video.currentTime = thread.timestamp_ms / 1000;
    overlay.show(thread.annotation ? thread.annotation.shapes : []);
    const item = threadsBox.querySelector(`[data-thread-id="${CSS.escape(thread.id)}"]`);
    if (item) item.classList.add("focus");
    setTimeout(() => item && item.classList.remove("focus"), 1500);
  }

  function showAtPlayhead() {
    const now = video.currentTime * 1000;
    playhead.style.left = `${Math.min(100, (now / duration()) * 100)}%`;
    const shapes = threads
      .filter((t) => t.annotation && now >= t.timestamp_ms && now <= (t.end_ms || t.timestamp_ms + SHOW_DRAWING_MS))
      .flatMap((t) => t.annotation.shapes);
    overlay.show(shapes);
    at.textContent = `At ${formatPreciseMs(Math.round(now))}`;
  }
  video.addEventListener("timeupdate", showAtPlayhead);
  video.addEventListener("seeked", showAtPlayhead);
  video.addEventListener("loadedmetadata", () => {
    // The player takes the frame's shape, so drawings sit where they were made.
    if (video.videoWidth && video.videoHeight) {
      stageBox.style.aspectRatio = `${video.videoWidth} / ${video.videoHeight}`;
      stageBox.classList.toggle("portrait", video.videoHeight > video.videoWidth);
    }
    renderTimeline();
    showAtPlayhead();
  });

  // -- comment at the playhead ------------------------------------------------------------------
  const at = h("span", { class: "at", "aria-live": "off", text: "At 0:00.0" });
  const comment = h("textarea", { name: "comment", rows: 3, maxlength: 5000, required: true });
  const skill = h("select", { name: "skill" }, h("option", { value: "", text: "No skill" }), session.skillsOf(clip.stage).map((s) => h("option", { value: s.key, text: s.name })));
  const rangeOn = h("input", { type: "checkbox", name: "range" });
  const rangeEnd = h("input", { type: "number", name: "range_end", min: 0, step: 0.1, disabled: true, inputmode: "decimal" });
  rangeOn.addEventListener("change", () => {
    rangeEnd.disabled = !rangeOn.checked;
    if (rangeOn.checked && !rangeEnd.value) rangeEnd.value = Math.min(duration() / 1000, video.currentTime + 2).toFixed(1);
  });
  const tools = [
    ["arrow", "Arrow"],
    ["rect", "Rectangle"],
    ["freehand", "Freehand"],
  ];
  const toolButtons = tools.map(([tool, label]) =>
    h("button", {
      type: "button",
      class: "tool",
      "aria-pressed": "false",
      text: label,
      dataset: { tool },
      onclick: (event) => {
        const pressed = event.currentTarget.getAttribute("aria-pressed") === "true";
        for (const b of toolButtons) b.setAttribute("aria-pressed", "false");
        if (!pressed) {
          event.currentTarget.setAttribute("aria-pressed", "true");
          video.pause();
          stageBox.scrollIntoView({ block: "nearest" });
        }
        overlay.setTool(pressed ? null : tool);
      },
    }),
  );
  const drawnCount = h("span", { class: "drawn", "aria-live": "polite" });
  overlay.onChange((draft) => {
    drawnCount.textContent = draft.length ? `${draft.length} shape${draft.length > 1 ? "s" : ""} drawn` : "";
  });
  const clearDrawing = h("button", { type: "button", text: "Clear drawing", onclick: () => overlay.clearDraft() });
  const postButton = h("button", { type: "submit", class: "primary", text: "Post" });
  const form = h(
    "form",
    { class: "comment-form card", "aria-label": "Comment at the playhead" },
    h("div", { class: "row" }, at, field("Skill", skill)),
    field("Comment", comment),
    h(
      "div",
      { class: "row" },
      h("label", { class: "check" }, rangeOn, " Range"),
      field("Range end (seconds)", rangeEnd),
    ),
    h("div", { class: "toolbar", role: "group", "aria-label": "Drawing tool" }, toolButtons, clearDrawing, drawnCount),
    postButton,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(async () => {
      const timestamp = Math.min(Math.round(video.currentTime * 1000), duration());
      const body = { body: comment.value, timestamp_ms: timestamp };
      if (skill.value) body.skill = skill.value;
      if (rangeOn.checked && rangeEnd.value) body.end_ms = Math.min(duration(), Math.round(Number(rangeEnd.value) * 1000));
      const shapes = overlay.draft();
      if (shapes.length) body.annotation = { shapes };
      await post(`/v1/clips/${clipId}/feedback`, body, { headers: { "Idempotency-Key": idempotencyKey() } });
      comment.value = "";
      rangeOn.checked = false;
      rangeEnd.disabled = true;
      rangeEnd.value = "";
      overlay.clearDraft();
      overlay.setTool(null);
      for (const b of toolButtons) b.setAttribute("aria-pressed", "false");
      showInfo(`Posted at ${formatMs(timestamp)}.`);
      await loadThreads();
    }, postButton);
  });

  // -- threads --------------------------------------------------------------------------------
  const canResolve = (t) => t.author.id === me.id || clip.owner_id === me.id || OVERSEERS.has(me.role);

  function threadItem(t) {
    const replyBox = h("textarea", { rows: 2, maxlength: 5000, required: true, "aria-label": "Reply" });
    const replyButton = h("button", { type: "submit", text: "Send reply" });
    const replyForm = h("form", { class: "reply-form" }, replyBox, replyButton);
    replyForm.addEventListener("submit", (event) => {
      event.preventDefault();
      attempt(async () => {
        await post(`/v1/clips/${clipId}/feedback`, { body: replyBox.value, parent_id: t.id }, { headers: { "Idempotency-Key": idempotencyKey() } });
        await loadThreads();
      }, replyButton);
    });
    const actions = [];
    if (!t.deleted && t.author.id !== me.id) {
      const helpful = h("button", {
        type: "button",
        class: "helpful",
        "aria-pressed": String(t.reacted_by_me),
        text: "Helpful",
        onclick: () =>
          attempt(async () => {
            const path = `/v1/feedback/${t.id}/reactions/helpful`;
            if (t.reacted_by_me) await del(path);
            else await post(path);
            await loadThreads();
          }, helpful),
      });
      actions.push(helpful);
    }
    if (canResolve(t)) {
      const resolve = h("button", {
        type: "button",
        text: t.resolved_at ? "Reopen" : "Resolve",
        onclick: () =>
          attempt(async () => {
            const path = `/v1/feedback/${t.id}/resolve`;
            if (t.resolved_at) await del(path);
            else await post(path);
            await loadThreads();
          }, resolve),
      });
      actions.push(resolve);
    }
    const range = t.end_ms ? `${formatMs(t.timestamp_ms)}–${formatMs(t.end_ms)}` : formatMs(t.timestamp_ms);
    return h(
      "li",
      { class: `thread${t.resolved_at ? " resolved" : ""}`, dataset: { threadId: t.id } },
      h(
        "div",
        { class: "thread-head" },
        h("button", { type: "button", class: "time", text: range, "aria-label": `Play from ${range}`, onclick: () => seek(t) }),
        h("strong", { text: t.author.name }),
        t.skill ? h("span", { class: "badge skill", text: session.skillName(clip.stage, t.skill) }) : null,
        t.annotation ? h("span", { class: "badge", text: "drawing" }) : null,
        t.resolved_at ? h("span", { class: "badge resolved", text: "resolved" }) : null,
        h("span", { class: "helpful-count", text: t.helpful_count ? `${t.helpful_count} found this helpful` : "" }),
      ),
      h("p", { class: "body", text: t.deleted ? "(deleted)" : t.body }),
      t.replies && t.replies.length
        ? h(
            "ul",
            { class: "replies" },
            t.replies.map((r) => h("li", { class: "reply" }, h("strong", { text: r.author.name }), " ", h("span", { class: "body", text: r.deleted ? "(deleted)" : r.body }))),
          )
        : null,
      h("div", { class: "actions" }, actions),
      replyForm,
    );
  }

  async function loadThreads() {
    const page = await get(`/v1/clips/${clipId}/feedback`, { limit: 100 });
    threads = page.items;
    fill(threadsBox,
      h("h2", { id: "threads-title", text: `Feedback (${threads.length})` }),
      threads.length ? h("ol", { class: "thread-list" }, threads.map(threadItem)) : h("p", { class: "empty", text: "No feedback yet: pause where it matters and comment." }),
    );
    renderTimeline();
  }

  // -- side: exemplars, delivery, review request ----------------------------------------------
  const side = h("aside", { class: "side" });

  async function openSideBySide(link) {
    const other = h("video", { controls: true, playsinline: true, "aria-label": `Exemplar: ${link.exemplar.clip.title}`, crossorigin: "anonymous" });
    const close = h("button", { type: "button", text: "Close exemplar" });
    const box = h("div", { class: "exemplar-player" }, h("h3", { text: link.exemplar.clip.title }), other, h("p", { class: "reason", text: link.reason }), close);
    fill(compare, box);
    stageWrap.classList.add("side-by-side");
    const mounted = await mountPlayer(other, link.exemplar.clip.id, { onError: showError });
    const stop = () => {
      mounted.destroy();
      fill(compare);
      stageWrap.classList.remove("side-by-side");
    };
    close.addEventListener("click", stop);
    onLeave(() => mounted.destroy());
  }

  async function exemplarsSection() {
    if (!PLAYABLE.has(clip.status)) return null;
    let links = [];
    try {
      links = await get(`/v1/clips/${clipId}/exemplars`);
    } catch (error) {
      return h("section", {}, h("h2", { text: "Exemplars" }), h("p", { class: "error-text", text: error.message }));
    }
    return h(
      "section",
      { class: "linked" },
      h("h2", { text: "Exemplars to compare" }),
      links.length
        ? h(
            "ul",
            {},
            links.map((link) =>
              h(
                "li",
                { class: "exemplar-link" },
                poster(link.exemplar.clip.poster_url),
                h("div", {}, h("a", { href: `#/clips/${link.exemplar.clip.id}`, text: link.exemplar.clip.title }), h("p", { class: "reason", text: link.reason }), link.exemplar.note ? h("p", { class: "note", text: link.exemplar.note }) : null),
                h("button", { type: "button", text: "Side by side", "aria-label": `Watch ${link.exemplar.clip.title} side by side`, onclick: (e) => attempt(() => openSideBySide(link), e.currentTarget) }),
              ),
            ),
          )
        : h("p", { class: "empty", text: "No exemplars for this stage yet." }),
    );
  }

  async function deliverySection() {
    if (clip.status !== "ready" || clip.kind === "feedback") return null;
    let speech;
    try {
      speech = await get(`/v1/clips/${clipId}/speech`);
    } catch (error) {
      return h("section", {}, h("h2", { text: "Delivery" }), h("p", { class: "error-text", text: error.message }));
    }
    const box = h("section", { class: "delivery" }, h("h2", { text: "Delivery" }));
    if (speech.status !== "ready" || !speech.metrics) {
      const why = speech.status === "pending" ? "The speech analysis has not run yet." : `No delivery metrics: ${humanize(speech.reason || speech.status)}.`;
      box.append(h("p", { class: "empty", text: why }));
      return box;
    }
    const d = speech.metrics.delivery;
    const t = speech.metrics.transcript;
    const rows = [
      ["Speaking", `${Math.round(d.speaking_ratio * 100)}% of the clip`],
      ["First word", formatPreciseMs(d.time_to_first_word_ms)],
      ["Pauses of 1 s or more", `${d.pause_count} (longest ${formatPreciseMs(d.longest_pause_ms)})`],
      ["Longest monologue", formatMs(d.longest_monologue_ms)],
    ];
    if (t && t.words_per_minute !== null) rows.push(["Words per minute", String(Math.round(t.words_per_minute))]);
    if (t && t.fillers_per_minute !== null) rows.push(["Fillers per minute", t.fillers_per_minute.toFixed(1)]);
    if (speech.metrics.loudness) rows.push(["Loudness", `${speech.metrics.loudness.integrated_lufs.toFixed(1)} LUFS`]);
    box.append(h("dl", { class: "metrics" }, rows.map(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })])));
    if (speech.flags.length) box.append(h("p", {}, "Flags: ", speech.flags.map((f) => h("span", { class: "badge flag", text: humanize(f) }))));
    if (speech.talk_track && speech.talk_track.phrases.length) {
      box.append(
        h(
          "ul",
          { class: "talk-track" },
          speech.talk_track.phrases.map((p) => h("li", { class: p.said === (p.kind === "use") ? "good" : "bad", text: `${p.kind === "use" ? "Say" : "Avoid"} “${p.phrase}”: ${p.said ? "said" : "not said"}` })),
        ),
      );
    }
    if (speech.confidence_class === "low") box.append(h("p", { class: "hint", text: "Transcript-based figures are approximate." }));
    return box;
  }

  async function reviewSection() {
    if (clip.owner_id !== me.id && !OVERSEERS.has(me.role)) return null;
    if (clip.kind === "feedback") return null;
    const find = h("input", { type: "search", name: "find", placeholder: "Type a name" });
    const reviewer = h("select", { name: "reviewer", required: true });
    const message = h("textarea", { name: "message", rows: 2, maxlength: 2000 });
    const button = h("button", { type: "submit", text: "Request review" });
    const findPeople = async (q) => {
      const page = await get("/v1/people", { q: q || undefined, limit: 50 });
      const people = page.items.filter((p) => p.id !== me.id && p.id !== clip.owner_id);
      fill(reviewer, ...people.map((p) => h("option", { value: p.id, text: `${p.name} (${humanize(p.role)})` })));
    };
    let timer;
    find.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => findPeople(find.value.trim()).catch(showError), 250);
    });
    await findPeople("").catch(showError);
    const form = h("form", { class: "card review-request" }, h("h2", { text: "Ask for a review" }), field("Find a person", find), field("Reviewer", reviewer), field("Message", message), button);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      attempt(async () => {
        if (!reviewer.value) throw new Error("Pick a reviewer.");
        await post(`/v1/clips/${clipId}/review-requests`, { reviewer_id: reviewer.value, message: message.value }, { headers: { "Idempotency-Key": idempotencyKey() } });
        message.value = "";
        showInfo("Review requested.");
      }, button);
    });
    return form;
  }

  // Coaches and admins mark any ready clip as an exemplar of its stage; top performers their own.
  function curateSection() {
    const may = OVERSEERS.has(me.role) || (me.role === "top_performer" && clip.owner_id === me.id);
    if (!may || clip.status !== "ready") return null;
    const path = `/v1/clips/${clipId}/exemplar`;
    if (clip.is_exemplar) {
      const unmark = h("button", { type: "button", text: "Unmark exemplar" });
      unmark.addEventListener("click", () =>
        attempt(async () => {
          await del(path);
          await refreshClip();
          await loadSide();
        }, unmark),
      );
      return h("section", { class: "curate" }, h("h2", { text: "Exemplar" }), h("p", { text: "This clip is an exemplar of its stage." }), unmark);
    }
    const note = h("input", { type: "text", name: "note", maxlength: 500 });
    const mark = h("button", { type: "submit", text: "Mark as exemplar" });
    const form = h("form", { class: "card curate" }, h("h2", { text: "Exemplar" }), field("Why it is worth watching", note), mark);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      attempt(async () => {
        await post(path, { note: note.value || null });
        showInfo("Marked as an exemplar of its stage.");
        await refreshClip();
        await loadSide();
      }, mark);
    });
    return form;
  }

  async function loadSide() {
    const parts = await Promise.all([exemplarsSection(), deliverySection(), reviewSection(), curateSection()]);
    fill(side, ...parts.filter(Boolean));
  }

  renderHeader();
  const stageWrap = h("div", { class: "stage-wrap" }, h("div", { class: "main-player" }, stageBox, waiting, timeline), compare);
  await Promise.all([loadThreads(), loadSide(), startPlayer()]);
  return h(
    "div",
    { class: "clip-page" },
    header,
    h("div", { class: "clip-layout" }, h("div", { class: "clip-main" }, stageWrap, form, threadsBox), side),
    h("p", { class: "hint", text: `Uploaded ${formatDate(clip.created_at)}` }),
  );
}
