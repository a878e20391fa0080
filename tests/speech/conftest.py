"""Speech test inputs, generated once per xdist worker: espeak-ng sentences (trimmed to their
first and last audible sample with sox, so where speech is is known to the sample) joined
with digital silences of known length, plus a few clips made with ffmpeg.
"""

from __future__ import annotations

import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.speech import SpeechSettings

RATE = 16000
SENTENCES = (
    "Our platform helps sales teams learn from their best calls",
    "Every rep records a short pitch and gets feedback from peers",
    "Coaches see the progress of the whole team in one place",
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ffmpeg: runs the ffmpeg/ffprobe binaries")


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def ffmpeg(*args: str) -> None:
    run("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args)


def wav_ms(path: Path) -> int:
    with wave.open(str(path)) as w:
        return round(w.getnframes() * 1000 / w.getframerate())


@dataclass(frozen=True)
class Spoken:
    """A generated recording and where its speech is (ms)."""

    path: Path
    duration_ms: int
    speech: list[tuple[int, int]]

    @property
    def speaking_ms(self) -> int:
        return sum(b - a for a, b in self.speech)

    @property
    def pauses(self) -> list[tuple[int, int]]:
        return [(a[1], b[0]) for a, b in zip(self.speech, self.speech[1:], strict=False)]


class Audio:
    def __init__(self, root: Path) -> None:
        self.root = root

    def sentence(self, i: int) -> Path:
        """Sentence i spoken by espeak-ng at 16 kHz mono, without leading/trailing silence."""
        out = self.root / f"sentence-{i}.wav"
        if not out.exists():
            raw = self.root / f"raw-{i}.wav"
            run("espeak-ng", "-v", "en-us", "-s", "160", "-w", str(raw), SENTENCES[i])
            # silence 1 … reverse silence 1 … reverse: trim both ends at -60 dBFS.
            run(
                "sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out),
                "silence", "1", "0.01", "0.1%", "reverse", "silence", "1", "0.01", "0.1%", "reverse",
            )  # fmt: skip
        return out

    def silence(self, ms: int) -> Path:
        out = self.root / f"silence-{ms}.wav"
        if not out.exists():
            run(
                "sox",
                "-n",
                "-r",
                str(RATE),
                "-c",
                "1",
                "-b",
                "16",
                str(out),
                "trim",
                "0",
                f"{ms / 1000}",
            )
        return out

    def spoken(self, name: str, plan: list[int | str]) -> Spoken:
        """Concatenate silences (ints, ms) and sentences ("s0".."s2") into `name`.wav."""
        parts: list[Path] = []
        speech: list[tuple[int, int]] = []
        at = 0
        for item in plan:
            part = self.silence(item) if isinstance(item, int) else self.sentence(int(item[1:]))
            length = wav_ms(part)
            if isinstance(item, str):
                speech.append((at, at + length))
            parts.append(part)
            at += length
        out = self.root / f"{name}.wav"
        if not out.exists():
            run("sox", *map(str, parts), str(out))
        return Spoken(out, wav_ms(out), speech)

    def as_video(self, audio: Path, name: str) -> Path:
        """`audio` as the AAC track of a small H.264 MP4 (what reps upload), the picture
        as long as the sound."""
        out = self.root / name
        if not out.exists():
            seconds = wav_ms(audio) / 1000
            ffmpeg(
                "-f", "lavfi", "-i", f"testsrc2=s=160x120:r=25:d={seconds}", "-i", str(audio),
                "-map", "0:v", "-map", "1:a",
                "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                "-c:a", "aac", "-b:a", "96k", "-f", "mp4", str(out),
            )  # fmt: skip
        return out

    def silent_video(self) -> Path:
        out = self.root / "silent.mp4"
        if not out.exists():
            ffmpeg(
                "-f", "lavfi", "-i", "testsrc2=s=160x120:r=10:d=3",
                "-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo",
                "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                "-c:a", "aac", "-f", "mp4", str(out),
            )  # fmt: skip
        return out

    def video_only(self) -> Path:
        out = self.root / "video-only.mp4"
        if not out.exists():
            ffmpeg(
                "-f", "lavfi", "-i", "testsrc2=s=160x120:r=10:d=2",
                "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                "-f", "mp4", str(out),
            )  # fmt: skip
        return out

    def sine(self, peak_dbfs: float, seconds: float = 4, channels: int = 1) -> Path:
        out = self.root / f"sine{peak_dbfs}-{channels}.wav"
        if not out.exists():
            amplitude = 10 ** (peak_dbfs / 20)
            expr = "|".join([f"{amplitude}*sin(2*PI*997*t)"] * channels)
            ffmpeg(
                "-f",
                "lavfi",
                "-i",
                f"aevalsrc={expr}:s=48000:d={seconds}",
                "-c:a",
                "pcm_s16le",
                str(out),
            )
        return out

    def tone(self, seconds: float = 3) -> Path:
        """Audible, but no speech: a chord of sines."""
        out = self.root / "tone.wav"
        if not out.exists():
            expr = "0.2*sin(2*PI*440*t)+0.2*sin(2*PI*660*t)"
            ffmpeg("-f", "lavfi", "-i", f"aevalsrc={expr}:s=16000:d={seconds}", str(out))
        return out


@pytest.fixture(scope="session")
def audio(tmp_path_factory: pytest.TempPathFactory) -> Audio:
    return Audio(tmp_path_factory.mktemp("speech-audio"))


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    path = tmp_path / "scratch"
    path.mkdir()
    return path


@pytest.fixture
def no_asr() -> SpeechSettings:
    """Delivery and loudness only: no recogniser to wait for."""
    return SpeechSettings(engine="none")
