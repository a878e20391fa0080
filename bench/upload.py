"""Upload throughput and API memory, measured side by side in one run.

Starts `peerpitch serve` (SQLite, local storage, no embedded worker) in a scratch folder, then
uploads the same bytes (default 1 GiB) three ways and prints each as a ratio of a plain
sequential write of those bytes to the same disk:

  * resumable protocol: POST /v1/clips, POST …/parts, PUT each part to its signed URL, complete
  * PUT /v1/clips/{id}/source with the whole file streamed as the body
  * baseline: sequential 1 MiB writes to a file on the same disk, then fsync (what `dd` does)

and the API process's peak RSS (VmHWM). Goals: ≥ 0.5 of disk speed, peak RSS < 200 MB.

    .venv/bin/python bench/upload.py [size_mib]
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BLOCK = os.urandom(1024 * 1024)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _body(size: int) -> Iterator[bytes]:
    sent = 0
    while sent < size:
        n = min(len(BLOCK), size - sent)
        yield BLOCK[:n]
        sent += n


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _disk_baseline(folder: Path, size: int) -> float:
    path = folder / "dd.bin"
    start = time.perf_counter()
    with path.open("wb") as f:
        for chunk in _body(size):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    elapsed = time.perf_counter() - start
    path.unlink()
    return elapsed


def main() -> int:
    size = int(sys.argv[1]) * 1024 * 1024 if len(sys.argv) > 1 else 1024**3
    # In var/ (git-ignored, the default media folder: the disk a local deployment writes to,
    # where /tmp may be RAM); a fresh clone has no var/ yet.
    (ROOT / "var").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pp-bench-upload-", dir=ROOT / "var"))
    try:
        return _run(work, size)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(work: Path, size: int) -> int:
    port = _free_port()
    env = {
        **os.environ,
        "PEERPITCH_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'bench.db'}",
        "PEERPITCH_MEDIA_DIR": str(work / "media"),
        "PEERPITCH_SECRET_KEY": "bench-secret-key-bench-secret-key",
        "PEERPITCH_EMBEDDED_WORKER": "false",
        "PEERPITCH_LOG_LEVEL": "WARNING",
    }
    peerpitch = str(ROOT / ".venv" / "bin" / "peerpitch")
    subprocess.run([peerpitch, "migrate"], env=env, check=True, capture_output=True)
    out = subprocess.run(
        [
            peerpitch,
            "create-org",
            "--name",
            "Bench",
            "--admin-email",
            "bench@bench.example.com",
            "--admin-password",
            "bench-password",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    json.loads(out.stdout)
    server = subprocess.Popen(
        [peerpitch, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL
    )
    api = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=api, timeout=600) as c:
            for _ in range(100):
                try:
                    if c.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            token = c.post(
                "/v1/auth/token",
                json={"email": "bench@bench.example.com", "password": "bench-password"},
            ).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}

            def new_clip(title: str) -> dict[str, object]:
                r = c.post(
                    "/v1/clips",
                    headers=auth,
                    json={
                        "title": title,
                        "kind": "pitch",
                        "stage": "closing",
                        "filename": "big.mp4",
                        "content_type": "video/mp4",
                        "size_bytes": size,
                    },
                )
                r.raise_for_status()
                return r.json()  # type: ignore[no-any-return]

            baseline = _disk_baseline(work, size)

            created = new_clip("parts")
            upload = created["upload"]
            assert isinstance(upload, dict)
            start = time.perf_counter()
            numbers = list(range(1, upload["part_count"] + 1))
            parts = c.post(
                f"/v1/uploads/{upload['id']}/parts", headers=auth, json={"part_numbers": numbers}
            ).json()["parts"]
            etags = []
            for target in parts:
                n = target["number"]
                length = min(upload["part_size"], size - (n - 1) * upload["part_size"])
                r = c.put(
                    target["url"], content=_body(length), headers={"Content-Length": str(length)}
                )
                r.raise_for_status()
                etags.append({"number": n, "etag": r.headers["etag"]})
            parts_done = time.perf_counter()
            r = c.post(f"/v1/uploads/{upload['id']}/complete", headers=auth, json={"parts": etags})
            r.raise_for_status()
            complete_done = time.perf_counter()

            clip = new_clip("source")["clip"]
            assert isinstance(clip, dict)
            start_source = time.perf_counter()
            r = c.put(
                f"/v1/clips/{clip['id']}/source",
                headers={**auth, "Content-Length": str(size)},
                content=_body(size),
            )
            r.raise_for_status()
            source_done = time.perf_counter()
        rss = _peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)

    mib = size / 1024 / 1024
    parts_s = parts_done - start
    rows = [
        ("disk baseline (sequential write + fsync)", baseline),
        ("parts via signed local URLs", parts_s),
        ("  + complete (assemble parts)", complete_done - start),
        ("PUT /v1/clips/{id}/source", source_done - start_source),
    ]
    print(f"upload benchmark: {mib:.0f} MiB, local storage on {work}")
    for label, seconds in rows:
        print(
            f"  {label:<42} {seconds:7.2f} s  {mib / seconds:8.1f} MiB/s  "
            f"ratio to disk {baseline / seconds:5.2f}"
        )
    print(f"  API peak RSS (VmHWM)                       {rss:7.1f} MB   goal < 200 MB")
    print("  goal: parts and PUT /source ≥ 0.50 of disk speed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
