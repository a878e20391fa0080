"""Hostile requests over a real socket (no client-side URL normalisation): path traversal
variants in /v1/media/{key} and a header block over the server's limit are refused with a
4xx, never a 500, and the server keeps serving."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.helpers.live_server import live_server

TRAVERSALS = [
    "/v1/media/../../etc/passwd",
    "/v1/media/%2e%2e/%2e%2e/etc/passwd",
    "/v1/media/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "/v1/media/..%2f..%2fetc%2fpasswd",
    "/v1/media//etc/passwd",
    "/v1/media/%2Fetc%2Fpasswd",
    "/v1/media/orgs/x/clip.mp4%00.m3u8",
    "/v1/media/orgs/%00/clip.mp4",
    "/v1/media/..\\..\\etc\\passwd",
]


def _raw(base_url: str, request: bytes) -> tuple[int, bytes]:
    parts = urlsplit(base_url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), 10) as s:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    status_line = data.split(b"\r\n", 1)[0].split()
    return int(status_line[1]), data


def test_traversal_and_oversized_headers_are_refused(tmp_path: Path) -> None:
    with live_server(tmp_path / "server", name="pp_hostile") as server:
        for path in TRAVERSALS:
            status, data = _raw(
                server.base_url,
                f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode(),
            )
            assert 400 <= status < 500, (path, data[:500])
            assert b"root:" not in data, path
        # A header block far over any sane limit (h11 refuses events over 16 KiB).
        big = b"X-Filler: " + b"a" * 200_000 + b"\r\n"
        status, data = _raw(
            server.base_url,
            b"GET /v1/me HTTP/1.1\r\nHost: t\r\n" + big + b"Connection: close\r\n\r\n",
        )
        assert 400 <= status < 500, data[:500]
        assert httpx.get(server.base_url + "/readyz", timeout=5).status_code == 200
        assert "Traceback" not in server.log()
