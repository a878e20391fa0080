"""Loudness (ffmpeg's ebur128) and the 16 kHz extraction, on sines of known level."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from app.speech.audio import extract, parse_loudness
from tests.speech.conftest import Audio


@pytest.mark.ffmpeg
@pytest.mark.parametrize(
    ("peak_dbfs", "channels", "lufs"),
    [
        # A 997 Hz sine of peak A dBFS on one channel measures A - 3.01 LUFS (EBU Tech 3341);
        # on both channels of a stereo pair, A.
        (-20.0, 1, -23.01),
        (-9.0, 2, -9.0),
    ],
)
async def test_loudness_of_a_sine(
    audio: Audio, tmp_path: Path, peak_dbfs: float, channels: int, lufs: float
) -> None:
    source = audio.sine(peak_dbfs, seconds=4, channels=channels)
    files, loudness = await extract(source, audio_index=0, work=tmp_path, duration_ms=4000)

    assert loudness is not None
    assert abs(loudness.integrated_lufs - lufs) <= 1.0
    assert loudness.range_lu <= 1.0  # a steady tone has no range
    assert loudness.true_peak_dbtp is not None and abs(loudness.true_peak_dbtp - peak_dbfs) <= 0.5
    assert loudness.sample_peak_dbfs is not None
    assert abs(loudness.sample_peak_dbfs - peak_dbfs) <= 0.5

    assert abs(files.duration_ms - 4000) <= 5
    with wave.open(str(files.wav_path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        assert abs(w.getnframes() - 64000) <= 80
    assert files.f32_path.stat().st_size == w.getnframes() * 4


def test_parse_loudness_takes_the_last_integrated_value_and_the_highest_peaks(
    tmp_path: Path,
) -> None:
    log = tmp_path / "loudness.txt"
    log.write_text(
        "frame:0    pts:0       pts_time:0\n"
        "lavfi.r128.M=-120.7\nlavfi.r128.I=-70.000\nlavfi.r128.LRA=0.000\n"
        "lavfi.r128.true_peak=0.500\nlavfi.r128.sample_peak=0.400\n"
        "frame:1    pts:4800    pts_time:0.1\n"
        "lavfi.r128.I=-18.250\nlavfi.r128.LRA=6.100\n"
        "lavfi.r128.true_peak=0.250\nlavfi.r128.sample_peak=nan\n"
    )
    loudness = parse_loudness(log)
    assert loudness is not None
    assert (loudness.integrated_lufs, loudness.range_lu) == (-18.25, 6.1)
    assert loudness.true_peak_dbtp == round(20 * -0.30103, 2)  # 0.5 linear
    assert loudness.sample_peak_dbfs == -7.96  # 0.4 linear; nan ignored


def test_parse_loudness_of_nothing(tmp_path: Path) -> None:
    assert parse_loudness(tmp_path / "missing.txt") is None
    (tmp_path / "empty.txt").write_text("")
    assert parse_loudness(tmp_path / "empty.txt") is None
    (tmp_path / "silence.txt").write_text(
        "lavfi.r128.I=-70.000\nlavfi.r128.LRA=0.000\nlavfi.r128.true_peak=0.000\n"
    )
    silent = parse_loudness(tmp_path / "silence.txt")
    assert silent is not None
    assert (silent.integrated_lufs, silent.true_peak_dbtp, silent.sample_peak_dbfs) == (
        -70.0,
        None,
        None,
    )
