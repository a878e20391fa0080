"""The request-body limit (app.ops.limits), from the probe's finding: three concurrent 200 MB
JSON bodies to POST /v1/auth/token took the API process from 137 MiB to 1,681 MiB before
validation refused them. Bodies over PEERPITCH_MAX_JSON_BYTES now answer 413 while they
arrive, on every route; upload parts and PUT /source keep their own streamed limits."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.helpers.api import create_clip
from tests.helpers.live_server import live_server

MiB = 1024 * 1024
LIMIT = MiB  # the default of PEERPITCH_MAX_JSON_BYTES


def _too_large(r: httpx.Response) -> None:
    assert r.status_code == 413, r.text
    body = r.json()
    assert body == {
        "error": {
            "code": "payload_too_large",
            "message": f"The request body is larger than the limit of {LIMIT} bytes.",
            "details": {"max_bytes": LIMIT},
            "request_id": r.headers["x-request-id"],
        }
    }
    # The server closes the connection rather than read (or drain) the rest.
    assert r.headers["connection"] == "close"
    assert r.headers["x-content-type-options"] == "nosniff"


def _login_body(size: int) -> bytes:
    """A syntactically valid JSON login of exactly ``size`` bytes."""
    head = b'{"email": "a@example.com", "password": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


class Chunks:
    """A request body produced as it is sent (chunked: no Content-Length), counting what the
    server pulled out of it."""

    def __init__(self, total: int, chunk: int = 64 * 1024) -> None:
        self.total = total
        self.chunk = chunk
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.pulled < self.total:
            size = min(self.chunk, self.total - self.pulled)
            self.pulled += size
            yield b" " * size


async def test_declared_length_over_the_limit_is_refused_unauthenticated(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post(
        "/v1/auth/token",
        content=_login_body(LIMIT + 1),
        headers={"Content-Type": "application/json"},
    )
    _too_large(r)


async def test_chunked_body_is_refused_once_past_the_limit_without_reading_the_rest(
    client: httpx.AsyncClient,
) -> None:
    body = Chunks(200 * MiB)
    r = await client.post(
        "/v1/auth/token", content=body, headers={"Content-Type": "application/json"}
    )
    _too_large(r)
    # The limit and one chunk past it, not the 200 MB.
    assert body.pulled <= LIMIT + body.chunk


async def test_a_body_at_the_limit_is_parsed(client: httpx.AsyncClient) -> None:
    for content in (_login_body(LIMIT), Chunks(LIMIT)):
        r = await client.post(
            "/v1/auth/token", content=content, headers={"Content-Type": "application/json"}
        )
        # Parsed and judged on its content: a login that fails, or blank JSON that is not.
        assert r.status_code in {401, 422}, r.text
        assert r.json()["error"]["code"] != "payload_too_large"


async def test_the_limit_comes_before_authentication_and_routing(
    client: httpx.AsyncClient,
) -> None:
    big = b"[" + b"0," * (LIMIT // 2) + b"0]"
    for method, path in (
        ("POST", "/v1/clips"),  # authenticated, no credentials sent
        ("POST", "/v1/no-such-route"),
        ("GET", "/healthz"),  # takes no body at all
    ):
        r = await client.request(
            method, path, content=big, headers={"Content-Type": "application/json"}
        )
        _too_large(r)


async def test_an_endpoint_that_reads_no_body_does_not_run_when_refused(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    clip_id = (await create_clip(client, rep))["clip"]["id"]
    r = await client.request(
        "DELETE", f"/v1/clips/{clip_id}", content=b"x" * (LIMIT + 1), headers=rep.headers
    )
    _too_large(r)
    # Not deleted: a 413 means nothing was done.
    assert (await client.get(f"/v1/clips/{clip_id}", headers=rep.headers)).status_code == 200


@pytest.fixture
def settings(make_settings: Any) -> Any:
    # Parts bigger than the JSON limit.
    return make_settings(upload_part_size=2 * MiB)


async def test_uploads_keep_their_own_limits_above_the_json_limit(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    data = os.urandom(3 * MiB)
    created = await create_clip(client, rep, size_bytes=len(data))
    upload_id = created["upload"]["id"]
    r = await client.post(
        f"/v1/uploads/{upload_id}/parts", json={"part_numbers": [1, 2]}, headers=rep.headers
    )
    assert r.status_code == 200, r.text
    urls = {p["number"]: urlsplit(p["url"]) for p in r.json()["parts"]}

    def part_path(number: int) -> str:
        return f"{urls[number].path}?{urls[number].query}"

    # The part's own limit still holds, above the JSON limit: 413 part_too_large.
    r = await client.put(part_path(1), content=os.urandom(2 * MiB + 1))
    assert r.status_code == 413 and r.json()["error"]["code"] == "part_too_large", r.text

    # A 2 MiB part with a Content-Length, and one sent chunked, are stored.
    etags = {}
    r = await client.put(part_path(1), content=data[: 2 * MiB])
    assert r.status_code == 200, r.text
    etags[1] = r.headers["etag"]
    second = data[2 * MiB :]

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(second), 256 * 1024):
            yield second[start : start + 256 * 1024]

    r = await client.put(part_path(2), content=chunked())
    assert r.status_code == 200, r.text
    etags[2] = r.headers["etag"]
    r = await client.post(
        f"/v1/uploads/{upload_id}/complete",
        json={"parts": [{"number": n, "etag": e} for n, e in sorted(etags.items())]},
        headers=rep.headers,
    )
    assert r.status_code == 202, r.text

    # The whole file in one PUT /source, over the JSON limit.
    other = (await create_clip(client, rep, size_bytes=len(data)))["clip"]["id"]
    r = await client.put(
        f"/v1/clips/{other}/source",
        content=data,
        headers={**rep.headers, "Content-Type": "video/mp4"},
    )
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "processing"


async def test_json_routes_near_the_uploads_are_still_limited(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    created = await create_clip(client, rep, size_bytes=3 * MiB)
    upload_id = created["upload"]["id"]
    big = b'{"part_numbers": [' + b"1, " * (LIMIT // 3) + b"1]}"
    r = await client.post(
        f"/v1/uploads/{upload_id}/parts",
        content=big,
        headers={**rep.headers, "Content-Type": "application/json"},
    )
    _too_large(r)


# --- memory: a real server process ---------------------------------------------------------

TOTAL = 200 * 1000 * 1000  # the probe's 200 MB
CHUNK = MiB


def _server_pid(port: int) -> int:
    """The `peerpitch serve … --port <port>` process (uvicorn serves in it: one worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in argv and str(port).encode() in argv:
            found.append(int(entry.name))
    assert len(found) == 1, found
    return found[0]


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def _reset_peak(pid: int) -> bool:
    """Start VmHWM (peak RSS) afresh, so it measures what comes next."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _body(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        size = min(CHUNK, total - sent)
        sent += size
        yield b" " * size


class Blast:
    """One raw HTTP/1.1 request whose body is sent as fast as the server takes it, while a
    thread reads whatever the server answers meanwhile (an early 413, then a close)."""

    def __init__(self, port: int, *, content_length: int | None, total: int = TOTAL) -> None:
        self.port = port
        self.content_length = content_length
        self.total = total
        self.sent = 0
        self.received = bytearray()
        self.send_error: OSError | None = None

    def run(self) -> None:
        framing = (
            f"Content-Length: {self.content_length}"
            if self.content_length is not None
            else "Transfer-Encoding: chunked"
        )
        head = (
            "POST /v1/auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\n{framing}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as sock:
            reader = threading.Thread(target=self._read, args=(sock,))
            reader.start()
            try:
                sock.sendall(head)
                for chunk in _body(self.total):
                    if self.content_length is None:
                        chunk = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
                    sock.sendall(chunk)
                    self.sent += len(chunk)
                if self.content_length is None:
                    sock.sendall(b"0\r\n\r\n")
                sock.shutdown(socket.SHUT_WR)
            except OSError as exc:  # the server answered and closed: the rest is not read
                self.send_error = exc
            reader.join(60)

    def _read(self, sock: socket.socket) -> None:
        try:
            while data := sock.recv(65536):
                self.received += data
        except OSError:
            pass  # a reset after the answer; what arrived before it is kept

    def status_and_body(self) -> tuple[int, dict[str, Any]] | None:
        """The answer, when it arrived before the connection was reset."""
        head, sep, body = bytes(self.received).partition(b"\r\n\r\n")
        if not sep:
            return None
        return int(head.split()[1]), json.loads(body)


def _assert_envelope_413(answer: tuple[int, dict[str, Any]]) -> None:
    status, body = answer
    assert status == 413
    assert body["error"]["code"] == "payload_too_large"
    assert body["error"]["details"] == {"max_bytes": LIMIT}


def _headers_only(port: int, content_length: int) -> tuple[int, dict[str, Any]]:
    """A client that sends the headers and waits: the 413 comes before any body byte."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            (
                "POST /v1/auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\nContent-Length: {content_length}\r\n\r\n"
            ).encode()
        )
        received = b""
        while data := sock.recv(65536):  # the server closes after its answer
            received += data
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"\r\nconnection: close" in head.lower()
    return int(head.split()[1]), json.loads(body)


def test_200_mb_bodies_leave_the_server_memory_flat(tmp_path: Path) -> None:
    with live_server(tmp_path / "server", name="pp_limits") as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        pid = _server_pid(port)
        with httpx.Client(base_url=server.base_url, timeout=30) as api:
            # Warm every path the big requests take, so what follows measures only them.
            for _ in range(3):
                assert api.get("/healthz").status_code == 200
                _assert_envelope_413(_headers_only(port, TOTAL))
                small = Blast(port, content_length=None, total=2 * MiB)
                small.run()

            # Refused from the headers alone, with the envelope, before any body byte.
            _assert_envelope_413(_headers_only(port, TOTAL))

            before = _status_kib(pid, "VmRSS")
            peak_measured = _reset_peak(pid)
            # The probe's three concurrent 200 MB bodies (chunked), plus one with a
            # Content-Length, all sent as fast as the server takes them.
            blasts = [Blast(port, content_length=None) for _ in range(3)]
            blasts.append(Blast(port, content_length=TOTAL))
            threads = [threading.Thread(target=b.run) for b in blasts]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            after = _status_kib(pid, "VmRSS")
            peak = _status_kib(pid, "VmHWM") if peak_measured else after
            growth_kib = max(peak, after) - before
            print(
                f"\nserver RSS before {before / 1024:.1f} MiB, after {after / 1024:.1f} MiB, "
                f"peak during {peak / 1024:.1f} MiB (growth {growth_kib / 1024:.1f} MiB); "
                f"bytes sent before the server closed: {[b.sent for b in blasts]}; "
                f"413 read before the close: {[b.status_and_body() is not None for b in blasts]}"
            )
            assert growth_kib <= 16 * 1024, (before, after, peak)
            for blast in blasts:
                # The server stopped reading: the clients could not push the 200 MB through.
                assert blast.sent < TOTAL, blast.sent
                answer = blast.status_and_body()
                if answer is not None:  # else reset before it was read: allowed
                    _assert_envelope_413(answer)

            # And the server is healthy: it answers, and a normal JSON request works.
            assert api.get("/healthz").status_code == 200
            r = api.post(
                "/v1/auth/token",
                json={"email": "admin@demo.peerpitch.dev", "password": "peerpitch-demo"},
            )
            assert r.status_code == 200, r.text
