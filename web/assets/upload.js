// Upload: a clip's parts go straight to their signed URLs (S3 presigned, or this API's signed
// part URLs), a few at a time, with a progress bar. An unfinished upload is remembered by the
// file's name, size and date, so picking the same file after a reload sends only what is missing.
import { ApiError, get, idempotencyKey, post } from "./api.js";
import { navigate, session } from "./state.js";
import { attempt, field, fill, h, humanize, showError, showInfo } from "./ui.js";

const RESUME = "peerpitch.uploads";
const PARALLEL = 3;

function remembered() {
  try {
    return JSON.parse(localStorage.getItem(RESUME) || "{}");
  } catch {
    return {};
  }
}

function remember(key, entry) {
  const all = remembered();
  if (entry) all[key] = entry;
  else delete all[key];
  localStorage.setItem(RESUME, JSON.stringify(all));
}

const fingerprint = (file) => `${file.name}|${file.size}|${file.lastModified}`;

// PUTs one part with XMLHttpRequest (fetch cannot report upload progress); no Authorization:
// the URL is the credential. Answers the part's ETag when the store exposes it.
function sendPart(part, blob, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(part.method || "PUT", part.url);
    for (const [name, value] of Object.entries(part.headers || {})) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(blob.size);
        resolve(xhr.getResponseHeader("ETag"));
      } else {
        let message = `Part ${part.number} was refused (${xhr.status}).`;
        try {
          message = JSON.parse(xhr.responseText).error.message || message;
        } catch {
          // storage errors are XML or empty
        }
        reject(new ApiError(xhr.status, "part_failed", message));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, "network", `Part ${part.number} could not be sent. Pick the file again to resume.`));
    xhr.send(blob);
  });
}

async function transfer(file, upload, bar, status) {
  const state = await get(`/v1/uploads/${upload.id}`);
  if (state.status !== "active") throw new ApiError(409, "upload_" + state.status, `This upload is ${state.status}; start a new one.`);
  const done = new Map(state.uploaded_parts.map((p) => [p.number, p]));
  const missing = [];
  for (let n = 1; n <= state.part_count; n++) if (!done.has(n)) missing.push(n);
  const sent = new Map();
  let stored = [...done.values()].reduce((sum, p) => sum + p.size, 0);
  const show = () => {
    const inFlight = [...sent.values()].reduce((a, b) => a + b, 0);
    const ratio = file.size ? (stored + inFlight) / file.size : 1;
    bar.value = Math.round(ratio * 100);
    status.textContent = `Uploading… ${Math.round(ratio * 100)}%`;
  };
  show();
  if (done.size) showInfo(`Resuming: ${done.size} of ${state.part_count} parts are already stored.`);
  // Part URLs expire: ask for them in small batches, just before sending.
  const queue = [...missing];
  async function worker() {
    while (queue.length) {
      const numbers = queue.splice(0, 1);
      const { parts } = await post(`/v1/uploads/${upload.id}/parts`, { part_numbers: numbers });
      for (const part of parts) {
        const start = (part.number - 1) * state.part_size;
        const blob = file.slice(start, Math.min(file.size, start + state.part_size));
        await sendPart(part, blob, (loaded) => {
          sent.set(part.number, loaded);
          show();
        });
        sent.delete(part.number);
        stored += blob.size;
        show();
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(PARALLEL, missing.length) }, worker));
  // The stored list names every part with its ETag (what S3 keeps), whether or not the
  // store let this page read the ETag header.
  const final = await get(`/v1/uploads/${upload.id}`);
  status.textContent = "Finishing…";
  return post(`/v1/uploads/${upload.id}/complete`, {
    parts: final.uploaded_parts.map((p) => ({ number: p.number, etag: p.etag })),
  });
}

export async function uploadScreen() {
  const me = session.me;
  const file = h("input", { type: "file", name: "file", accept: "video/*", required: true });
  const title = h("input", { type: "text", name: "title", required: true, maxlength: 200 });
  const stage = h("select", { name: "stage" }, session.stages.map((s) => h("option", { value: s.key, text: s.name })));
  const skills = h("fieldset", { class: "skills" });
  const kinds = me.role === "rep" ? ["pitch"] : ["pitch", "exemplar"];
  const kind = h("select", { name: "kind" }, kinds.map((k) => h("option", { value: k, text: humanize(k) })));
  const visibility = h("select", { name: "visibility" }, h("option", { value: "org", text: "My organization" }), h("option", { value: "private", text: "Only me, coaches and reviewers" }));
  const bar = h("progress", { max: 100, value: 0, "aria-label": "Upload progress" });
  const status = h("p", { class: "upload-status", role: "status", "aria-live": "polite" });
  const button = h("button", { type: "submit", class: "primary", text: "Start upload" });
  const drop = h("div", { class: "drop", text: "…or drop a video file here" });

  const showSkills = () => {
    fill(skills,
      h("legend", { text: "Skills" }),
      session.skillsOf(stage.value).map((skill) =>
        h("label", { class: "check" }, h("input", { type: "checkbox", name: "skills", value: skill.key }), " ", skill.name),
      ),
    );
  };
  stage.addEventListener("change", showSkills);
  showSkills();

  const resume = remembered();
  const pending = Object.entries(resume);
  const pick = () => {
    const chosen = file.files[0];
    if (!chosen) return;
    const entry = resume[fingerprint(chosen)];
    if (entry) {
      title.value = entry.title;
      status.textContent = `“${entry.title}” was not finished: Start upload sends the missing parts.`;
    } else if (!title.value) {
      title.value = chosen.name.replace(/\.[^.]+$/, "");
    }
  };
  file.addEventListener("change", pick);
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) {
      file.files = event.dataTransfer.files;
      pick();
    }
  });

  const form = h(
    "form",
    { class: "card upload-form" },
    field("Upload", file),
    drop,
    field("Title", title),
    h("div", { class: "row" }, field("Stage", stage), field("Kind", kind), field("Visibility", visibility)),
    skills,
    button,
    bar,
    status,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = file.files[0];
    if (!chosen) return showError(new Error("Pick a video file first."));
    attempt(async () => {
      const key = fingerprint(chosen);
      let entry = remembered()[key];
      let clipId;
      let upload;
      if (entry) {
        clipId = entry.clip_id;
        upload = { id: entry.upload_id };
        try {
          const state = await get(`/v1/uploads/${upload.id}`);
          if (state.status !== "active") entry = null;
        } catch {
          entry = null;
        }
        if (!entry) {
          // The old upload ended (aborted or expired): a new upload on the same clip.
          const clip = await get(`/v1/clips/${clipId}`).catch(() => null);
          if (clip && clip.status === "failed") {
            upload = await post(`/v1/clips/${clipId}/upload`, { size_bytes: chosen.size, filename: chosen.name, content_type: chosen.type || "application/octet-stream" }, { headers: { "Idempotency-Key": idempotencyKey() } });
            entry = { clip_id: clipId, upload_id: upload.id, title: title.value };
            remember(key, entry);
          } else {
            remember(key, null);
          }
        }
      }
      if (!entry) {
        const created = await post(
          "/v1/clips",
          {
            title: title.value.trim(),
            kind: kind.value,
            stage: stage.value,
            skills: [...skills.querySelectorAll("input:checked")].map((i) => i.value),
            visibility: visibility.value,
            filename: chosen.name,
            content_type: chosen.type || "application/octet-stream",
            size_bytes: chosen.size,
          },
          { headers: { "Idempotency-Key": idempotencyKey() } },
        );
        clipId = created.clip.id;
        upload = created.upload;
        remember(key, { clip_id: clipId, upload_id: upload.id, title: title.value.trim() });
      }
      await transfer(chosen, upload, bar, status);
      remember(key, null);
      status.textContent = "Uploaded: processing has started.";
      navigate(`/clips/${clipId}`);
    }, button);
  });

  return h(
    "div",
    {},
    h("h1", { text: "Upload a clip" }),
    pending.length
      ? h(
          "section",
          { class: "card resume" },
          h("h2", { text: "Unfinished uploads" }),
          h("p", { text: "Pick the same file again to send only its missing parts:" }),
          h("ul", {}, pending.map(([k, e]) => h("li", { text: `${e.title} (${k.split("|")[0]})` }))),
        )
      : null,
    form,
  );
}
