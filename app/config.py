"""Settings, read from the environment with the PEERPITCH_ prefix."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:
    from app.speech.settings import SpeechSettings

# Where development state (SQLite file, generated secret, media) lives by default.
VAR_DIR = Path("var")


class ConfigError(RuntimeError):
    """Settings that cannot work; startup stops with this message."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PEERPITCH_", extra="ignore")

    env: Literal["development", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///./var/peerpitch.db"
    # Empty in development means "generate once and keep in var/secret_key".
    secret_key: str = ""
    access_token_ttl_s: int = Field(default=900, ge=30)
    refresh_token_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)
    log_format: Literal["json", "console"] = "console"
    log_level: str = "INFO"
    # Comma-separated origins; empty means the environment's default (see allowed_origin_regex).
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # A just-rotated refresh token presented again within this window returns the same new
    # pair (two tabs, a lost response on a phone); after it, reuse revokes the token family.
    refresh_reuse_grace_s: int = Field(default=30, ge=0, le=3600)
    # Sign-in throttling: failures count per (email, client address) pair, so strangers'
    # attempts never lock a user out of their own password, and per client address across
    # all emails, so one client guessing many addresses is slowed. Both within the window.
    login_max_failures: int = Field(default=5, ge=1)
    login_address_max_failures: int = Field(default=20, ge=1)
    login_failure_window_s: int = Field(default=60, ge=1)

    # Request limits and operations
    # A JSON request body larger than this answers 413 while it is being read, before it is
    # buffered or parsed (uploads have their own streamed limits).
    max_json_bytes: int = Field(default=1024**2, ge=1024)
    # /docs and /openapi.json: served in development; in production only when true.
    public_docs: bool | None = None
    # When set, GET /metrics requires `Authorization: Bearer <token>`.
    metrics_token: str | None = None
    # Most points one feedback annotation may hold across all its shapes.
    annotation_max_points: int = Field(default=2000, ge=2, le=2000)

    # Storage
    storage: Literal["local", "s3"] = "local"
    media_dir: Path = VAR_DIR / "media"
    s3_bucket: str = "peerpitch"
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    # Base URL clients use to reach the API (signed local URLs); default: as requested.
    public_base_url: str | None = None
    # The web app's folder (web/: index.html, assets/, node_modules/ from `npm ci`); None: the
    # repository's web/ when it exists. `PEERPITCH_SERVE_WEB=false` leaves `/` unserved.
    web_dir: Path | None = None
    serve_web: bool = True

    # Uploads
    max_upload_bytes: int = Field(default=8 * 1024**3, ge=1)
    upload_part_size: int = Field(default=16 * 1024**2, ge=1)
    upload_url_ttl_s: int = Field(default=3600, ge=10)
    upload_ttl_s: int = Field(default=48 * 3600, ge=60)

    # Media processing
    max_duration_s: int = Field(default=1800, ge=1)
    max_dimension: int = Field(default=4096, ge=16)
    # Where workers download sources and write renditions before uploading (default: system temp).
    scratch_dir: Path | None = None
    # Force one x264 preset for every rendition (tests use "ultrafast"); default: per rung.
    transcode_preset: str | None = None
    # True: segments are published as they are encoded, so a clip plays ("viewable") long
    # before it is "ready". False: nothing is published until every output exists.
    transcode_early_viewable: bool = True
    # True: "viewable" waits until a player starting then would not catch up with the encode
    # (app.media.plan.stall_free_start); False: the first segment makes a clip viewable.
    transcode_stall_free_start: bool = True
    # Read sources no faster than this many times real time (default: as fast as possible).
    # Spreads a worker's CPU over a longer time; tests use it to watch a clip play early.
    transcode_readrate: float | None = Field(default=None, gt=0)

    # Playback
    # Lifetime of the URLs from GET /v1/clips/{id}/playback (HLS token, MP4, poster, VTT).
    playback_ttl_s: int = Field(default=6 * 3600, ge=60)
    # Lifetime of the signed poster_url on list items (clips, history, library).
    poster_url_ttl_s: int = Field(default=3600, ge=60)
    # The URLs the play routes hand out for the storyboard sprite and the MP4/poster redirects
    # (presigned S3 GETs or signed /v1/media URLs) live at most this long (segments:
    # playback_segment_url_ttl_s).
    playback_s3_url_ttl_s: int = Field(default=900, ge=30, le=900)
    # A segment URL of a served playlist (/v1/play/{token}/s/{rendition}/{segment}) checks the
    # clip at each request and redirects to a URL minted then (presigned S3 GET or signed
    # /v1/media URL) that lives this long: players resume after any pause within the token's
    # lifetime, and a deleted clip's segments stop at once.
    playback_segment_url_ttl_s: int = Field(default=120, ge=1, le=900)
    # A play token is bound to its viewer: its routes re-check that the viewer may still
    # see the clip (visibility, review requests, an active account) at least this often.
    playback_access_recheck_s: int = Field(default=30, ge=1, le=60)
    # An authenticated request that needs no read version reuses its caller's row read at
    # most this long ago by the same process (0: read each request). Bounds how long a
    # deactivation or role change made through another process takes (changes made through
    # this one apply at once); the token is verified on every request regardless.
    auth_recheck_s: float = Field(default=0.5, ge=0, le=1)

    # Exemplars and the prep kit
    # How many exemplars GET /v1/clips/{id}/exemplars links a pitch to (manual ones first).
    exemplar_links: int = Field(default=3, ge=1, le=20)
    # Deep links in the prep kit open the mobile app at a clip and moment: {base}clips/{id}?t_ms=
    app_link_base: str = "peerpitch://"
    # Feedback pages and prep kits kept per API process (each kind), served again only while
    # the organization's read version is unchanged (app.readcache); 0 turns the cache off.
    read_cache_entries: int = Field(default=1000, ge=0)

    # Events and webhooks
    # How long GET /v1/events can replay (and the live stream resume) an event.
    event_retention_days: int = Field(default=30, ge=1)
    # Development and tests only: lets webhook URLs resolve to loopback addresses (and
    # nothing else that is not public); production always refuses them.
    webhook_allow_loopback: bool = False
    # "loopback": every webhook host resolves to 127.0.0.1 and only loopback connections are
    # made (sandboxes and test servers whose URLs are made up); "system": real DNS.
    webhook_egress: Literal["system", "loopback"] = "system"

    # Speech analysis (app.speech, run by the analyze_speech job). Defaults mirror
    # app.speech.settings.SpeechSettings, which documents each knob (a test keeps them equal).
    # Transcription engine: pocketsphinx (ships its US-English model; low confidence),
    # whisper (faster-whisper, `peerpitch[whisper]`, with an operator's CTranslate2 model
    # folder; never downloaded) or none (delivery and loudness only).
    asr_engine: Literal["pocketsphinx", "whisper", "none"] = "pocketsphinx"
    asr_model_dir: Path | None = None
    asr_whisper_compute_type: str = "int8"
    asr_whisper_cpu_threads: int = Field(default=0, ge=0)
    asr_whisper_beam_size: int = Field(default=5, ge=1, le=10)
    # The recogniser may run this many times the audio's duration, plus the base.
    asr_timeout_factor: float = Field(default=3.0, gt=0)
    asr_timeout_base_s: float = Field(default=60.0, gt=0)
    speech_language: str = Field(default="en", min_length=2, max_length=8)
    # Voice activity: speech probability threshold, silences shorter than min_silence_ms
    # are part of speaking, bursts shorter than min_speech_ms are noise.
    speech_vad_threshold: float = Field(default=0.5, gt=0.15, lt=1)
    speech_min_silence_ms: int = Field(default=300, ge=32)
    speech_min_speech_ms: int = Field(default=150, ge=0)
    # A silence between words at least this long is a pause.
    speech_pause_min_ms: int = Field(default=1000, ge=100)
    # Flags: too_quiet, clipping, long_pauses, slow_start, too_slow, too_fast, many_fillers.
    speech_too_quiet_lufs: float = -30.0
    speech_clipping_dbtp: float = 0.0
    speech_long_pause_ms: int = Field(default=3000, ge=100)
    speech_slow_start_ms: int = Field(default=5000, ge=0)
    speech_too_slow_wpm: float = Field(default=110.0, gt=0)
    speech_too_fast_wpm: float = Field(default=180.0, gt=0)
    speech_many_fillers_per_min: float = Field(default=5.0, gt=0)
    # Filler words per language as JSON, e.g. {"en": ["um", "uh", "you know"]}; unset: the
    # built-in list (app.speech.settings.DEFAULT_FILLERS).
    speech_filler_words: dict[str, list[str]] | None = None

    # Jobs and workers
    embedded_worker: bool | None = None
    worker_concurrency: int = Field(default=2, ge=1)
    job_lease_s: int = Field(default=60, ge=2)
    job_heartbeat_s: int = Field(default=15, ge=1)
    job_poll_interval_s: float = Field(default=2.0, gt=0)
    sweep_interval_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _split_origins(cls, data: object) -> object:
        if isinstance(data, dict):
            raw = data.get("cors_origins")
            if isinstance(raw, str):
                data["cors_origins"] = [o.strip() for o in raw.split(",") if o.strip()]
        return data

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def serve_docs(self) -> bool:
        if self.public_docs is None:
            return not self.is_production
        return self.public_docs

    @property
    def run_embedded_worker(self) -> bool:
        if self.embedded_worker is None:
            return not self.is_production
        return self.embedded_worker

    @property
    def allowed_origin_regex(self) -> str | None:
        """Development allows any localhost port unless origins are configured explicitly."""
        if self.cors_origins or self.is_production:
            return None
        return r"^http://(localhost|127\.0\.0\.1)(:\d+)?$"

    def speech_settings(self) -> SpeechSettings:
        """What app.speech.analyze() is tuned with (raises ValueError for values it refuses)."""
        # Imported here: app.speech imports this module (ConfigError).
        from app.speech.settings import DEFAULT_FILLERS, SpeechSettings

        fillers = self.speech_filler_words
        return SpeechSettings(
            engine=self.asr_engine,
            model_dir=self.asr_model_dir,
            language=self.speech_language,
            whisper_compute_type=self.asr_whisper_compute_type,
            whisper_cpu_threads=self.asr_whisper_cpu_threads,
            whisper_beam_size=self.asr_whisper_beam_size,
            asr_timeout_factor=self.asr_timeout_factor,
            asr_timeout_base_s=self.asr_timeout_base_s,
            vad_threshold=self.speech_vad_threshold,
            min_silence_ms=self.speech_min_silence_ms,
            min_speech_ms=self.speech_min_speech_ms,
            pause_min_ms=self.speech_pause_min_ms,
            too_quiet_lufs=self.speech_too_quiet_lufs,
            clipping_true_peak_dbtp=self.speech_clipping_dbtp,
            long_pause_ms=self.speech_long_pause_ms,
            slow_start_ms=self.speech_slow_start_ms,
            too_slow_wpm=self.speech_too_slow_wpm,
            too_fast_wpm=self.speech_too_fast_wpm,
            many_fillers_per_min=self.speech_many_fillers_per_min,
            filler_words=dict(DEFAULT_FILLERS)
            if fillers is None
            else {lang.lower(): tuple(words) for lang, words in fillers.items()},
        )

    def resolved_secret_key(self) -> str:
        if self.secret_key:
            return self.secret_key
        if self.is_production:
            raise ConfigError(
                "PEERPITCH_SECRET_KEY is required when PEERPITCH_ENV=production "
                "(use a long random value, e.g. `python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))'`)"
            )
        path = VAR_DIR / "secret_key"
        if path.exists():
            return path.read_text().strip()
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        path.chmod(0o600)
        return key


# S3 refuses a multipart upload whose non-final parts are smaller than this, but only at
# CompleteMultipartUpload (EntityTooSmall): checked at start-up instead of at a user's upload.
S3_MIN_PART_SIZE = 5 * 1024**2


def check_config(settings: Settings, *, media: bool) -> None:
    """Start-up checks that need no network (``serve``, ``worker``, ``readyz``): raise
    ConfigError naming what is wrong. ``media``: this process encodes (a worker, or the API
    with its embedded worker), so ffmpeg/ffprobe and a writable scratch folder are needed."""
    if settings.storage == "s3" and settings.upload_part_size < S3_MIN_PART_SIZE:
        raise ConfigError(
            f"PEERPITCH_UPLOAD_PART_SIZE={settings.upload_part_size} is below S3's minimum part "
            f"size of {S3_MIN_PART_SIZE} bytes (5 MiB); every multipart upload would fail"
        )
    if not media:
        return
    for program in ("ffmpeg", "ffprobe"):
        if shutil.which(program) is None:
            raise ConfigError(f"{program} is not on PATH; install ffmpeg (it provides both)")
    scratch = settings.scratch_dir or Path(tempfile.gettempdir())
    try:
        scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=scratch):
            pass
    except OSError as exc:
        raise ConfigError(
            f"the scratch folder {scratch} (PEERPITCH_SCRATCH_DIR) is not writable: "
            f"{exc.strerror or exc}"
        ) from exc


@lru_cache
def get_settings() -> Settings:
    return Settings()
