"""The worker's side of the ASR child process (`app.speech.child`).

`AsrProcess.start()` spawns it at once, so Python, the VAD and the engine's model load while
ffmpeg extracts the audio; `run()` hands it the job and reads its answer within a wall-clock
budget; `close()` kills it (its whole process group) unless it has exited, so a cancelled
job or a timeout never leaves a recogniser running. Its environment is scrubbed like
ffmpeg's: nothing of the worker's credentials reaches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from app.media.runner import kill_group, read_tail
from app.speech.child import EXIT_ENGINE_ERROR, ChildJob, ChildResult
from app.speech.settings import SpeechSettings

ProgressCallback = Callable[[float], Awaitable[None]]

STDERR_TAIL_BYTES = 8 * 1024
# One JSON line holds the whole transcript (~100 bytes a word).
STDOUT_LINE_LIMIT = 64 * 1024**2


class AsrProcessError(Exception):
    """The child failed. `code` is "engine_error" (its engine could not load: configuration,
    final), "timeout" or "asr_failed" (crashed or killed: a retry may help)."""

    def __init__(self, code: str, message: str, stderr_tail: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.stderr_tail = stderr_tail


def _child_env() -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LC_ALL": "C.UTF-8",
        "PYTHONUTF8": "1",
        # The same code as the worker's, whether installed or run from a checkout.
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        # Belt and braces: faster-whisper is only ever given a local folder.
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "MALLOC_ARENA_MAX": "2",
    }


class AsrProcess:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        assert proc.stderr is not None
        self._stderr = asyncio.ensure_future(read_tail(proc.stderr, STDERR_TAIL_BYTES))

    @classmethod
    async def start(cls, settings: SpeechSettings) -> AsrProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app.speech",
            settings.model_dump_json(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_child_env(),
            start_new_session=True,  # its own process group, so a kill reaches every thread
            limit=STDOUT_LINE_LIMIT,
        )
        return cls(proc)

    async def run(
        self,
        job: ChildJob,
        *,
        timeout_s: float,
        on_progress: ProgressCallback | None = None,
    ) -> ChildResult:
        proc = self._proc
        assert proc.stdin is not None
        assert proc.stdout is not None
        result: ChildResult | None = None
        try:
            async with asyncio.timeout(timeout_s):
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    proc.stdin.write(job.model_dump_json().encode() + b"\n")
                    await proc.stdin.drain()
                    proc.stdin.close()
                async for line in proc.stdout:
                    message = json.loads(line)
                    if "progress" in message and on_progress is not None:
                        await on_progress(float(message["progress"]))
                    elif "result" in message:
                        result = ChildResult.model_validate(message["result"])
                returncode = await proc.wait()
        except TimeoutError:
            self.kill()
            raise AsrProcessError(
                "timeout", f"speech recognition took over {timeout_s:.0f} s", await self._tail()
            ) from None
        except (ValueError, TypeError) as exc:  # not our protocol (or a line over the limit)
            self.kill()
            raise AsrProcessError(
                "asr_failed", f"unreadable answer: {exc}", await self._tail()
            ) from None
        if returncode == EXIT_ENGINE_ERROR:
            raise AsrProcessError("engine_error", "the engine could not load", await self._tail())
        if returncode != 0 or result is None:
            raise AsrProcessError("asr_failed", f"exited with {returncode}", await self._tail())
        return result

    async def _tail(self) -> str:
        await self._proc.wait()
        try:
            raw = await asyncio.wait_for(self._stderr, timeout=5)
        except TimeoutError:
            return ""
        return raw.decode("utf-8", errors="replace")

    def kill(self) -> None:
        kill_group(self._proc)

    async def close(self) -> None:
        """Kill the child unless it has exited, and reap it (safe to call twice)."""
        self.kill()
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        await asyncio.shield(self._proc.wait())
        if not self._stderr.done():
            self._stderr.cancel()
        with contextlib.suppress(BaseException):
            await self._stderr
