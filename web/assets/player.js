// A clip's player: hls.js over MediaSource (native HLS where the browser has it, e.g. Safari),
// fed by the signed URLs of GET /v1/clips/{id}/playback, captions included when the clip has
// them (the master's SUBTITLES rendition; a <track> of captions_url for native HLS).
import Hls from "./vendor/hls.mjs";
import { get, post } from "./api.js";
import { h } from "./ui.js";

const REPORT_MS = 10000;

export async function mountPlayer(video, clipId, { captionsLabel = "Captions", onError, record = true } = {}) {
  const playback = await get(`/v1/clips/${clipId}/playback`);
  if (playback.poster_url) video.poster = playback.poster_url;
  let hls = null;
  if (Hls.isSupported()) {
    // No worker: the page's CSP allows no blob: workers, and fMP4 needs no transmuxing.
    hls = new Hls({ enableWorker: false, subtitleDisplay: true, renderTextTracksNatively: true });
    // hls.js retries requests itself; a fatal error gets a few recoveries, then the viewer is
    // told (never an endless reload loop, e.g. when media URLs are blocked by CORS or expired).
    let recoveries = 0;
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal) return;
      recoveries += 1;
      if (recoveries <= 2 && data.type === Hls.ErrorTypes.NETWORK_ERROR) hls.startLoad();
      else if (recoveries <= 2 && data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      else {
        hls.destroy();
        const status = data.response && data.response.code ? ` (HTTP ${data.response.code})` : "";
        if (onError) onError(new Error(`This clip cannot be played here${status}. Reload the page to try again.`));
      }
    });
    // The master marks its captions DEFAULT=NO (they are machine-made), so hls.js lists the
    // track but loads nothing until one is picked: pick it once the list is in (hls.js resets
    // the selection right after this event, hence the microtask). Viewers switch it off from
    // the player's captions menu.
    let captionsPicked = false;
    hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, () => {
      queueMicrotask(() => {
        if (!captionsPicked && hls.subtitleTracks.length && hls.subtitleTrack < 0) {
          captionsPicked = true;
          hls.subtitleTrack = 0;
        }
      });
    });
    hls.loadSource(playback.hls_url);
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = playback.hls_url;
    if (playback.captions_url) {
      video.append(h("track", { kind: "captions", src: playback.captions_url, srclang: "en", label: captionsLabel, default: true }));
    }
  } else if (playback.mp4_url) {
    video.src = playback.mp4_url;
  } else if (onError) {
    onError(new Error("This browser cannot play HLS; the MP4 download comes once the clip is ready."));
  }

  // Watch progress (POST /v1/clips/{id}/views): every few seconds while playing, and on pause.
  let watchedMs = 0;
  let lastTime = null;
  let lastReport = 0;
  const report = (completed = false) => {
    if (!record || !Number.isFinite(video.duration)) return;
    const position = Math.min(Math.round(video.currentTime * 1000), Math.round(video.duration * 1000));
    post(`/v1/clips/${clipId}/views`, { position_ms: position, watched_ms: Math.round(watchedMs), completed }).catch(() => {});
  };
  const onTime = () => {
    const now = video.currentTime;
    if (lastTime !== null && !video.seeking && now > lastTime && now - lastTime < 1.5) watchedMs += (now - lastTime) * 1000;
    lastTime = now;
    if (Date.now() - lastReport > REPORT_MS) {
      lastReport = Date.now();
      report();
    }
  };
  const onPause = () => report();
  const onEnded = () => report(true);
  const onSeeked = () => {
    lastTime = video.currentTime;
  };
  video.addEventListener("timeupdate", onTime);
  video.addEventListener("pause", onPause);
  video.addEventListener("ended", onEnded);
  video.addEventListener("seeked", onSeeked);

  return {
    playback,
    // Captions that arrived after the master was loaded (the speech analysis ran while the
    // page was open): the whole-track WebVTT as a <track>, so playback goes on undisturbed.
    async addCaptions() {
      if (Array.from(video.textTracks).some((t) => t.kind === "subtitles" || t.kind === "captions")) return;
      const fresh = await get(`/v1/clips/${clipId}/playback`);
      if (!fresh.captions_url) return;
      const track = h("track", { kind: "captions", src: fresh.captions_url, srclang: "en", label: captionsLabel });
      video.append(track);
      track.track.mode = "showing";
    },
    destroy() {
      video.removeEventListener("timeupdate", onTime);
      video.removeEventListener("pause", onPause);
      video.removeEventListener("ended", onEnded);
      video.removeEventListener("seeked", onSeeked);
      if (hls) hls.destroy();
      video.removeAttribute("src");
    },
  };
}
