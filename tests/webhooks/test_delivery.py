"""The SSRF-safe delivery client.

NETWORK RULE of these tests: traffic goes to loopback only. Every host name is answered by an
injected resolver (never real DNS), and every connector either fails the test when asked to
connect at all (refusals) or when asked to connect anywhere but a loopback IP.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpcore
import pytest
from standardwebhooks.webhooks import Webhook

from app.webhooks import delivery, signing
from app.webhooks.delivery import UrlNotAllowed, check_destination, check_url, deliver
from tests.helpers.waiting import eventually

PUBLIC = "93.184.216.34"  # a public address that no test ever connects to
BODY = b'{"type": "clip.ready", "data": {"clip_id": "c1"}}'


# --- resolvers and connectors -----------------------------------------------------------------


class FakeResolver:
    """Answers from a table; a name with several answers gets them in turn (the last one
    repeating). Records every question; an unknown name fails the test instead of going to DNS."""

    def __init__(self, answers: dict[str, list[list[str]]] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host not in self.answers:
            pytest.fail(f"the test resolver was asked for an unknown name {host!r}")
        queue = self.answers[host]
        return queue.pop(0) if len(queue) > 1 else queue[0]


class FailingConnector(httpcore.AsyncNetworkBackend):
    """Any connection at all fails the test: refusals must happen before a socket exists."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.calls.append(host)
        pytest.fail(f"a socket was about to be opened to {host}:{port}")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.calls.append(path)
        pytest.fail(f"a unix socket was about to be opened at {path}")


class CountingStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, owner: LoopbackConnector) -> None:
        self._inner = inner
        self._owner = owner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = await self._inner.read(max_bytes, timeout)
        self._owner.bytes_read += len(data)
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self._owner.tls_server_hostnames.append(server_hostname)
        tls = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return CountingStream(tls, self._owner)

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


class LoopbackConnector(httpcore.AsyncNetworkBackend):
    """Connects for real, but only to a loopback IP literal: a name (which would be resolved
    again, outside the check) or any other address fails the test."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.tls_server_hostnames: list[str | None] = []
        self.bytes_read = 0
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.calls.append((host, port))
        try:
            is_loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            pytest.fail(f"the connector was handed a name, not a checked address: {host!r}")
        if not is_loopback:
            pytest.fail(f"the connector was asked to connect to non-loopback {host}")
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return CountingStream(stream, self)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        pytest.fail("unix sockets are never used")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


# --- a loopback HTTP/1.1 receiver -------------------------------------------------------------


@dataclass
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


Responder = Callable[[asyncio.StreamWriter, "Receiver"], Awaitable[None]]


def respond(status: int, body: bytes = b"", extra: str = "") -> Responder:
    async def send(writer: asyncio.StreamWriter, receiver: Receiver) -> None:
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n{extra}"
        writer.write(head.encode() + b"\r\n" + body)
        await writer.drain()

    return send


@dataclass
class Receiver:
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    responder: Responder = field(default_factory=lambda: respond(200, b"ok"))
    # Set at teardown: lets a responder that "never answers" end with the test.
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str = "/hook", host: str | None = None) -> str:
        shown = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"http://{shown}:{self.port}{path}"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            method, target, _ = request_line.split(" ")
            headers = {}
            for line in filter(None, lines):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Received(method, target, headers, body))
            await self.responder(writer, self)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client hung up, as a capped or timed-out delivery does
        finally:
            writer.close()


async def start_receiver(
    host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
) -> tuple[Receiver, asyncio.Server]:
    receiver = Receiver(host=host)
    server = await asyncio.start_server(receiver.serve, host, 0, ssl=tls)
    receiver.port = server.sockets[0].getsockname()[1]
    return receiver, server


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver, server = await start_receiver()
    async with server:
        yield receiver
        receiver.done.set()


# --- a) deliveries to a real receiver on loopback ---------------------------------------------


async def test_delivers_signed_post_that_the_receiver_verifies(receiver: Receiver) -> None:
    secret = signing.new_secret()
    headers = signing.headers([secret], "msg_1", int(time.time()), BODY)
    connector = LoopbackConnector()

    result = await deliver(
        receiver.url("/hooks/peerpitch?tenant=a"),
        BODY,
        headers,
        resolver=FakeResolver(),
        connector=connector,
        allow_loopback=True,
        require_https=False,
    )

    assert result == delivery.DeliveryResult(200, result.latency_ms, None, False, "ok")
    assert result.latency_ms >= 0
    [request] = receiver.requests
    assert (request.method, request.target, request.body) == (
        "POST",
        "/hooks/peerpitch?tenant=a",
        BODY,
    )
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == delivery.USER_AGENT
    assert Webhook(secret).verify(request.body, request.headers) == {
        "type": "clip.ready",
        "data": {"clip_id": "c1"},
    }
    assert connector.calls == [("127.0.0.1", receiver.port)]


async def test_a_non_2xx_status_is_reported_as_is(receiver: Receiver) -> None:
    receiver.responder = respond(410, b"gone")
    result = await deliver(
        receiver.url(),
        BODY,
        {},
        connector=LoopbackConnector(),
        allow_loopback=True,
        require_https=False,
    )
    assert (result.status_code, result.error, result.refused, result.response_excerpt) == (
        410,
        None,
        False,
        "gone",
    )


async def test_redirects_are_not_followed(receiver: Receiver) -> None:
    # Following it would be an SSRF: the connector fails the test on the metadata address.
    receiver.responder = respond(
        302, extra="Location: http://169.254.169.254/latest/meta-data/\r\n"
    )
    connector = LoopbackConnector()
    result = await deliver(
        receiver.url(), BODY, {}, connector=connector, allow_loopback=True, require_https=False
    )
    assert (result.status_code, result.error) == (302, None)
    assert len(receiver.requests) == 1
    assert connector.calls == [("127.0.0.1", receiver.port)]


@pytest.mark.parametrize("cap", [65536, 1000])
async def test_a_huge_response_is_read_only_up_to_the_cap(receiver: Receiver, cap: int) -> None:
    receiver.responder = respond(200, b"x" * 1_000_000)
    connector = LoopbackConnector()
    result = await deliver(
        receiver.url(),
        BODY,
        {},
        connector=connector,
        allow_loopback=True,
        require_https=False,
        timeout_s=5,
        max_response_bytes=cap,
    )
    assert (result.status_code, result.error) == (200, None)
    assert result.response_excerpt == "x" * min(cap, 1024)
    # httpcore reads the socket 64 KiB at a time: at most one read past the cap, plus headers.
    assert connector.bytes_read <= cap + 65536 + 1024
    assert connector.bytes_read < 1_000_000


async def test_a_receiver_that_never_answers_times_out(receiver: Receiver) -> None:
    async def silent(writer: asyncio.StreamWriter, receiver: Receiver) -> None:
        await receiver.done.wait()

    receiver.responder = silent
    started = time.monotonic()
    # wait_for: a missing deadline fails the test in 3 s instead of hanging it.
    result = await asyncio.wait_for(
        deliver(
            receiver.url(),
            BODY,
            {},
            connector=LoopbackConnector(),
            allow_loopback=True,
            require_https=False,
            timeout_s=0.5,
        ),
        3,
    )
    elapsed = time.monotonic() - started
    assert (result.status_code, result.refused) == (None, False)
    assert result.error == "timeout after 0.5s"
    assert 0.4 <= elapsed < 2.0
    await eventually(lambda: len(receiver.requests), until=lambda n: n == 1, what="the request")


async def test_the_deadline_is_total_not_per_read(receiver: Receiver) -> None:
    # Each byte arrives well inside the 0.5 s read timeout; only a total deadline ends this.
    async def trickle(writer: asyncio.StreamWriter, receiver: Receiver) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        while not receiver.done.is_set():
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.05)  # the peer's pace, not a test waiting for something

    receiver.responder = trickle
    started = time.monotonic()
    # wait_for: a missing deadline fails the test in 3 s instead of hanging it.
    result = await asyncio.wait_for(
        deliver(
            receiver.url(),
            BODY,
            {},
            connector=LoopbackConnector(),
            allow_loopback=True,
            require_https=False,
            timeout_s=0.5,
        ),
        3,
    )
    assert (result.status_code, result.error) == (200, "timeout after 0.5s")
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("answer", [b"", b"SMTP ready\r\n\r\n"])
async def test_a_broken_receiver_is_an_error_not_an_exception(
    receiver: Receiver, answer: bytes
) -> None:
    async def broken(writer: asyncio.StreamWriter, receiver: Receiver) -> None:
        writer.write(answer)
        await writer.drain()

    receiver.responder = broken
    result = await deliver(
        receiver.url(),
        BODY,
        {},
        connector=LoopbackConnector(),
        allow_loopback=True,
        require_https=False,
    )
    assert (result.status_code, result.refused) == (None, False)
    assert result.error is not None and result.error.startswith("RemoteProtocolError: ")


async def test_connection_refused_is_an_error_not_an_exception() -> None:
    with socket.socket() as probe:  # a port that nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await deliver(
        f"http://127.0.0.1:{port}/",
        BODY,
        {},
        connector=LoopbackConnector(),
        allow_loopback=True,
        require_https=False,
    )
    assert result.status_code is None and not result.refused
    assert result.error is not None and result.error.startswith("connect_error: ")


async def test_default_connector_and_resolver_reach_a_loopback_literal(receiver: Receiver) -> None:
    result = await deliver(receiver.url(), BODY, {}, allow_loopback=True, require_https=False)
    assert result.status_code == 200
    assert await delivery.default_resolver("127.0.0.1", 80) == ["127.0.0.1"]  # numeric: no DNS


async def test_ipv6_loopback_receiver_gets_a_bracketed_host_header() -> None:
    try:
        receiver, server = await start_receiver("::1")
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    async with server:
        result = await deliver(
            receiver.url(),
            BODY,
            {},
            connector=LoopbackConnector(),
            allow_loopback=True,
            require_https=False,
        )
    assert result.status_code == 200
    assert receiver.requests[0].headers["host"] == f"[::1]:{receiver.port}"


async def test_unresolvable_host_is_an_error_and_refused_at_create_time() -> None:
    async def nxdomain(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    result = await deliver(
        "https://nowhere.example.test/", BODY, {}, resolver=nxdomain, connector=FailingConnector()
    )
    assert (result.status_code, result.refused) == (None, False)
    assert result.error is not None and result.error.startswith("dns_error: nowhere.example.test")
    empty = FakeResolver({"empty.example.test": [[]]})
    result = await deliver(
        "https://empty.example.test/", BODY, {}, resolver=empty, connector=FailingConnector()
    )
    assert result.error == "dns_error: empty.example.test: no address"
    with pytest.raises(UrlNotAllowed) as refused:
        await check_destination("https://nowhere.example.test/", resolver=nxdomain)
    assert refused.value.reason == "host does not resolve"


# --- TLS: SNI and certificate checks use the name, the socket uses the checked IP ------------


def tls_contexts(tmp_path: Path, cert_name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts: a throwaway CA and a certificate for ``cert_name``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def builder(
        subject: str, issuer: str, key: ec.EllipticCurvePrivateKey
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
        )

    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    ca = (
        builder("peerpitch test CA", "peerpitch test CA", ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(aki, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        builder(cert_name, "peerpitch test CA", leaf_key)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(cert_name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(aki, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "leaf.pem", tmp_path / "leaf.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


@pytest.mark.parametrize(
    ("cert_name", "verified"), [("hooks.example.test", True), ("other.example.test", False)]
)
async def test_tls_uses_the_host_name_while_connecting_to_the_checked_ip(
    tmp_path: Path, cert_name: str, verified: bool
) -> None:
    server_tls, client_tls = tls_contexts(tmp_path, cert_name)
    sni: list[str | None] = []

    def record_sni(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        sni.append(name)

    server_tls.sni_callback = record_sni
    receiver, server = await start_receiver(tls=server_tls)
    resolver = FakeResolver({"hooks.example.test": [["127.0.0.1"]]})
    connector = LoopbackConnector()
    async with server:
        result = await deliver(
            f"https://hooks.example.test:{receiver.port}/hook",
            BODY,
            {},
            resolver=resolver,
            connector=connector,
            allow_loopback=True,
            require_https=True,
            timeout_s=5,
            ssl_context=client_tls,
        )
        receiver.done.set()
    assert connector.calls == [("127.0.0.1", receiver.port)]
    assert connector.tls_server_hostnames == ["hooks.example.test"]
    assert sni == ["hooks.example.test"]
    if verified:
        assert (result.status_code, result.error) == (200, None)
        assert receiver.requests[0].headers["host"] == f"hooks.example.test:{receiver.port}"
    else:  # the certificate is checked against the name, so a wrong one fails the handshake
        assert result.status_code is None and not result.refused
        assert result.error is not None and "CERTIFICATE_VERIFY_FAILED" in result.error
        assert receiver.requests == []


# --- b) refusals: no socket is ever opened ----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "answers", "allow_loopback", "require_https", "reason"),
    [
        ("http://127.0.0.1:8080/h", None, False, False, "loopback address 127.0.0.1"),
        ("https://10.0.0.1/h", None, False, True, "private address 10.0.0.1"),
        (
            "http://169.254.169.254/latest/meta-data/",
            None,
            False,
            False,
            "link-local address 169.254.169.254",
        ),
        ("http://[::1]:8080/", None, False, False, "loopback address ::1"),
        ("https://[fd00::1]/", None, False, True, "private address fd00::1"),
        (
            "https://[::ffff:127.0.0.1]/",
            None,
            False,
            True,
            "loopback address 127.0.0.1 (in ::ffff:",
        ),
        ("https://100.64.0.1/", None, False, True, "shared address 100.64.0.1"),
        ("https://0.0.0.0/", None, False, True, "unspecified address 0.0.0.0"),
        (
            "https://[64:ff9b::a9fe:a9fe]/",
            None,
            False,
            True,
            "link-local address 169.254.169.254 (in 64:ff9b::",
        ),
        ("https://loopy.example.test/", ["127.0.0.1"], False, True, "loopback address 127.0.0.1"),
        (
            "https://mixed.example.test/",
            [PUBLIC, "10.0.0.7"],
            False,
            True,
            "private address 10.0.0.7",
        ),
        (
            "https://mixed6.example.test/",
            [PUBLIC, "fe80::1"],
            False,
            True,
            "link-local address fe80::1",
        ),
        ("http://public.example.test/", [PUBLIC], False, True, "scheme"),
        ("ftp://public.example.test/", [PUBLIC], True, False, "scheme"),
        ("https://user:pw@public.example.test/", [PUBLIC], False, True, "userinfo"),
        ("https://127.1/", None, True, True, "host"),  # inet_aton's short form of 127.0.0.1
        ("https://2130706433/", None, True, True, "host"),  # and its decimal form
        ("https://[fe80::1%25eth0]/", None, True, True, "host"),
        # allow_loopback lets loopback through and nothing else:
        ("http://10.0.0.1/", None, True, False, "private address 10.0.0.1"),
        ("http://169.254.169.254/", None, True, False, "link-local address 169.254.169.254"),
        (
            "http://meta.example.test/",
            ["169.254.169.254"],
            True,
            False,
            "link-local address 169.254.169.254",
        ),
        (
            "http://both.example.test/",
            ["127.0.0.1", "192.168.1.1"],
            True,
            False,
            "private address 192.168.1.1",
        ),
    ],
)
async def test_refused_destinations_never_open_a_socket(
    url: str, answers: list[str] | None, allow_loopback: bool, require_https: bool, reason: str
) -> None:
    host = urlsplit(url).hostname or ""
    resolver = FakeResolver({host: [answers]} if answers is not None else {})
    connector = FailingConnector()
    result = await deliver(
        url,
        BODY,
        {},
        resolver=resolver,
        connector=connector,
        allow_loopback=allow_loopback,
        require_https=require_https,
    )

    assert result.refused
    assert result.status_code is None
    assert result.error is not None and result.error.startswith(
        f"webhook_url_not_allowed: {reason}"
    )
    assert connector.calls == []
    # IP literals and URLs refused by syntax are judged without asking any resolver.
    resolved = answers is not None and reason not in {"scheme", "userinfo"}
    assert resolver.calls == ([(host, 443 if url.startswith("https") else 80)] if resolved else [])
    with pytest.raises(UrlNotAllowed) as refused:
        await check_destination(
            url,
            resolver=FakeResolver(resolver.answers),
            allow_loopback=allow_loopback,
            require_https=require_https,
        )
    assert refused.value.reason.startswith(reason)


# --- c) DNS rebinding -------------------------------------------------------------------------


async def test_dns_rebinding_is_caught_at_delivery() -> None:
    resolver = FakeResolver({"rebind.example.test": [[PUBLIC], ["127.0.0.1"]]})
    connector = FailingConnector()
    url = "https://rebind.example.test/hook"

    await check_destination(url, resolver=resolver, allow_loopback=False, require_https=True)
    result = await deliver(url, BODY, {}, resolver=resolver, connector=connector)

    assert result.refused
    assert result.error == "webhook_url_not_allowed: loopback address 127.0.0.1"
    assert resolver.calls == [("rebind.example.test", 443), ("rebind.example.test", 443)]
    assert connector.calls == []


async def test_delivery_connects_to_the_address_it_checked(receiver: Receiver) -> None:
    # Resolved once per delivery: were the name resolved again at connect time, it would
    # answer the public address and the connector would fail the test.
    resolver = FakeResolver({"hooks.example.test": [["127.0.0.1"], [PUBLIC]]})
    connector = LoopbackConnector()
    result = await deliver(
        receiver.url(host="hooks.example.test"),
        BODY,
        {},
        resolver=resolver,
        connector=connector,
        allow_loopback=True,
        require_https=False,
    )
    assert result.status_code == 200
    assert resolver.calls == [("hooks.example.test", receiver.port)]
    assert connector.calls == [("127.0.0.1", receiver.port)]
    assert receiver.requests[0].headers["host"] == f"hooks.example.test:{receiver.port}"


async def test_each_checked_address_is_tried_in_turn(receiver: Receiver) -> None:
    # The receiver listens on 127.0.0.1 only, so ::1 (checked, allowed) refuses the connection.
    resolver = FakeResolver({"dual.example.test": [["::1", "127.0.0.1"]]})
    connector = LoopbackConnector()
    result = await deliver(
        receiver.url(host="dual.example.test"),
        BODY,
        {},
        resolver=resolver,
        connector=connector,
        allow_loopback=True,
        require_https=False,
    )
    assert (result.status_code, result.error) == (200, None)
    assert connector.calls == [("::1", receiver.port), ("127.0.0.1", receiver.port)]


# --- d) the address classifier and URL syntax -------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason", "with_loopback_allowed"),
    [
        (PUBLIC, None, None),
        ("8.8.8.8", None, None),
        ("2606:2800:220:1:248:1893:25c8:1946", None, None),
        ("::ffff:93.184.216.34", None, None),
        ("64:ff9b::5db8:d822", None, None),  # NAT64 of a public address
        ("2002:5db8:d822::1", None, None),  # 6to4 of a public address
        ("127.0.0.1", "loopback address 127.0.0.1", None),
        ("127.255.0.9", "loopback address 127.255.0.9", None),
        ("::1", "loopback address ::1", None),
        ("::ffff:127.0.0.1", "loopback address 127.0.0.1 (in ::ffff:", None),
        ("10.1.2.3", "private address 10.1.2.3", "same"),
        ("172.16.0.1", "private address 172.16.0.1", "same"),
        ("172.31.255.255", "private address 172.31.255.255", "same"),
        ("172.32.0.1", None, None),
        ("192.168.0.1", "private address 192.168.0.1", "same"),
        ("100.64.0.1", "shared address 100.64.0.1", "same"),
        ("100.127.255.255", "shared address 100.127.255.255", "same"),
        ("100.128.0.1", None, None),
        ("169.254.169.254", "link-local address 169.254.169.254", "same"),
        ("224.0.0.1", "multicast address 224.0.0.1", "same"),
        ("0.0.0.0", "unspecified address 0.0.0.0", "same"),  # noqa: S104
        ("255.255.255.255", "reserved address 255.255.255.255", "same"),
        ("240.0.0.1", "reserved address 240.0.0.1", "same"),
        ("192.0.2.1", "reserved address 192.0.2.1", "same"),
        ("198.18.0.1", "reserved address 198.18.0.1", "same"),
        ("198.51.100.7", "reserved address 198.51.100.7", "same"),
        ("203.0.113.7", "reserved address 203.0.113.7", "same"),
        ("192.0.0.170", "reserved address 192.0.0.170", "same"),
        ("::", "unspecified address ::", "same"),
        ("fd00::1", "private address fd00::1", "same"),
        ("fc00::1", "private address fc00::1", "same"),
        ("fe80::1", "link-local address fe80::1", "same"),
        ("fe80::1%eth0", "scoped address fe80::1%eth0", "same"),
        ("fec0::1", "site-local address fec0::1", "same"),
        ("ff02::1", "multicast address ff02::1", "same"),
        ("2001:db8::1", "reserved address 2001:db8::1", "same"),
        ("2001::1", "reserved address 2001::1", "same"),  # Teredo
        ("100::1", "reserved address 100::1", "same"),
        ("::ffff:10.0.0.1", "private address 10.0.0.1 (in ::ffff:", "same"),
        ("::ffff:169.254.169.254", "link-local address 169.254.169.254 (in ::ffff:", "same"),
        ("::127.0.0.1", "loopback address 127.0.0.1 (in ::7f00:1)", "same"),  # IPv4-compatible
        ("::93.184.216.34", "reserved address ::5db8:d822", "same"),
        ("64:ff9b::10.0.0.1", "private address 10.0.0.1 (in 64:ff9b::a00:1)", "same"),
        ("64:ff9b::127.0.0.1", "loopback address 127.0.0.1 (in 64:ff9b::7f00:1)", "same"),
        ("64:ff9b:1::5db8:d822", "private address 64:ff9b:1::5db8:d822", "same"),
        ("2002:a9fe:a9fe::1", "link-local address 169.254.169.254 (in 2002:a9fe:a9fe::1)", "same"),
        ("2002:7f00:1::", "loopback address 127.0.0.1 (in 2002:7f00:1::)", "same"),
        ("not-an-ip", "invalid address 'not-an-ip'", "same"),
    ],
)
def test_address_classifier(
    address: str, reason: str | None, with_loopback_allowed: str | None
) -> None:
    refused = delivery.refusal_reason(address, allow_loopback=False)
    if reason is None:
        assert refused is None
    else:
        assert refused is not None and refused.startswith(reason)
    loopback_allowed = delivery.refusal_reason(address, allow_loopback=True)
    assert loopback_allowed == (refused if with_loopback_allowed == "same" else None)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/peerpitch",
        "https://hooks.example.com:8443/a/b?c=d&e=f",
        "HTTPS://Hooks.Example.COM/",
        "https://hooks.example.com./",
        "https://[2606:2800:220:1:248:1893:25c8:1946]/x",
        "https://93.184.216.34:9000/x",
        "https://bücher.example/x",
        "https://10.0.0.1/syntax-only",  # check_url does not judge addresses: check_destination does
    ],
)
def test_check_url_accepts(url: str) -> None:
    check_url(url, require_https=True)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://hooks.example.com/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("hooks.example.com/x", "scheme"),
        ("https://user@hooks.example.com/", "userinfo"),
        ("https://:@hooks.example.com/", "userinfo"),
        ("https://hooks.example.com@10.0.0.1/", "userinfo"),
        ("https:///path", "host"),
        ("https://hooks..example.com/", "host"),
        ("https://-bad.example.com/", "host"),
        ("https://0x7f.1/", "host"),
        ("https://[::1%25lo]/", "host"),
        ("https://[not-v6]/", "syntax"),
        ("https://hooks.example.com:99999/", "port"),
        ("https://hooks.example.com:0/", "port"),
        ("https://hooks.example.com:x/", "port"),
        ("https://hooks.example.com/a b", "syntax"),
        ("https://hooks.example.com/\r\nX: y", "syntax"),
        ("https://[::1/", "syntax"),
        ("", "syntax"),
    ],
)
def test_check_url_refuses(url: str, reason: str) -> None:
    with pytest.raises(UrlNotAllowed) as refused:
        check_url(url, require_https=True)
    assert refused.value.reason == reason


def test_check_url_allows_http_in_development() -> None:
    check_url("http://hooks.example.com/", require_https=False)
    with pytest.raises(UrlNotAllowed):
        check_url("ftp://hooks.example.com/", require_https=False)
