"""Delivering one webhook request to an integrator's URL without becoming an SSRF proxy.

An integrator chooses the URL, so every delivery is a request from inside our network to a
place of their choosing. The rules, and why:

- Only http(s), never userinfo (credentials in URLs end up in logs), https only in production.
- The host is resolved at delivery time and EVERY resolved address must be public: a name that
  resolves to one public and one private address is refused, since the OS may pick either.
- We connect to exactly the address we checked (``GuardedBackend``), so DNS rebinding (public
  at check time, 127.0.0.1 a moment later) cannot slip between check and connect.
- No redirects (httpcore never follows them), a total deadline, a capped response read: a
  receiver can neither steer us elsewhere nor hold a worker or its memory.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import httpcore

# (host, port) -> IP address strings. Injectable so tests never query real DNS.
Resolver = Callable[[str, int], Awaitable[list[str]]]

REFUSED_CODE = "webhook_url_not_allowed"
EXCERPT_BYTES = 1024
MAX_URL_LENGTH = 2048
USER_AGENT = "peerpitch-webhooks/1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlNotAllowed(Exception):
    """The URL or one of its addresses is not a permitted destination; ``reason`` says which
    rule (e.g. ``"scheme"``, ``"userinfo"``, ``"private address 10.0.0.1"``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DeliveryResult:
    """What one attempt produced, for the delivery log. ``status_code`` is set once the
    receiver's status line arrived (``error`` may then tell that reading the body failed);
    deciding that 2xx means success is the caller's."""

    status_code: int | None
    latency_ms: int
    error: str | None
    refused: bool
    response_excerpt: str


# --- addresses --------------------------------------------------------------------------------
# Explicit tables (IANA special-purpose registries) rather than only ipaddress's is_private /
# is_global: those differ between Python patch releases and miss some ranges (3.11's is_global
# is True for multicast 224.0.0.0/4 and for the 6to4 form of 10.0.0.1).

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

_V4_REFUSED: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/8"), "unspecified"),  # "this network": 0.0.0.0 reaches localhost on Linux
    (_V4("10.0.0.0/8"), "private"),
    (_V4("100.64.0.0/10"), "shared"),  # carrier-grade NAT, RFC 6598
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local"),  # cloud metadata lives at 169.254.169.254
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.0.0.0/24"), "reserved"),  # IETF protocol assignments
    (_V4("192.0.2.0/24"), "reserved"),  # TEST-NET-1
    (_V4("192.88.99.0/24"), "reserved"),  # deprecated 6to4 relay anycast
    (_V4("192.168.0.0/16"), "private"),
    (_V4("198.18.0.0/15"), "reserved"),  # benchmarking
    (_V4("198.51.100.0/24"), "reserved"),  # TEST-NET-2
    (_V4("203.0.113.0/24"), "reserved"),  # TEST-NET-3
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("240.0.0.0/4"), "reserved"),  # includes broadcast 255.255.255.255
)

_V6_REFUSED: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("64:ff9b:1::/48"), "private"),  # local-use NAT64, RFC 8215
    (_V6("100::/64"), "reserved"),  # discard-only
    (_V6("2001::/23"), "reserved"),  # IETF assignments: Teredo, benchmarking, ORCHID
    (_V6("2001:db8::/32"), "reserved"),  # documentation
    (_V6("3fff::/20"), "reserved"),  # documentation, RFC 9637
    (_V6("fc00::/7"), "private"),  # unique local addresses
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local"),
    (_V6("ff00::/8"), "multicast"),
)
# Everything routable on the IPv6 internet is allocated from 2000::/3; outside it, only the
# NAT64 prefix (judged by its embedded IPv4) can reach a public host.
_V6_GLOBAL_UNICAST = _V6("2000::/3")
_V6_NAT64 = _V6("64:ff9b::/96")
_V6_IPV4_COMPATIBLE = _V6("::/96")


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _v4_kind(ip: ipaddress.IPv4Address) -> str | None:
    for network, kind in _V4_REFUSED:
        if ip in network:
            return kind
    # A net under the table, in case it ever misses a range the stdlib knows.
    if ip.is_private or ip.is_reserved or ip.is_multicast or ip.is_link_local:
        return "reserved"
    return None


def _v4_refusal(ip: ipaddress.IPv4Address, *, allow_loopback: bool, inside: str = "") -> str | None:
    kind = _v4_kind(ip)
    if kind is None or (kind == "loopback" and allow_loopback):
        return None
    return f"{kind} address {ip}" + (f" (in {inside})" if inside else "")


def refusal_reason(address: str, *, allow_loopback: bool = False) -> str | None:
    """Why a connection to ``address`` (an IP string) is refused, or None when it is allowed.

    ``allow_loopback`` (development and tests) lets 127.0.0.0/8 and ::1 through, nothing else.
    """
    ip = _ip(address)
    if ip is None:
        return f"invalid address {address!r}"
    if isinstance(ip, ipaddress.IPv4Address):
        return _v4_refusal(ip, allow_loopback=allow_loopback)

    if ip.scope_id:
        return f"scoped address {ip}"  # fe80::1%eth0: an interface-local destination
    if ip.ipv4_mapped is not None:
        # ::ffff:a.b.c.d is how a dual-stack socket reaches the IPv4 host a.b.c.d itself.
        return _v4_refusal(ip.ipv4_mapped, allow_loopback=allow_loopback, inside=str(ip))
    if ip.is_loopback:  # ::1
        return None if allow_loopback else f"loopback address {ip}"
    if ip.is_unspecified:
        return f"unspecified address {ip}"

    embedded = _embedded_v4(ip)
    if embedded is not None:
        # Translated or tunnelled to an IPv4 host: judge that host. A gateway's loopback is no
        # development receiver, so allow_loopback does not apply here.
        reason = _v4_refusal(embedded, allow_loopback=False, inside=str(ip))
        if reason is not None:
            return reason
        if ip in _V6_NAT64:
            return None  # a NAT64 gateway's way to a public IPv4 host

    for network, kind in _V6_REFUSED:
        if ip in network:
            return f"{kind} address {ip}"
    # Outside 2000::/3 lies nothing routable (the deprecated IPv4-compatible ::a.b.c.d too).
    if ip not in _V6_GLOBAL_UNICAST or ip.is_multicast or ip.is_link_local or ip.is_site_local:
        return f"reserved address {ip}"
    return None


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address carried by a NAT64 (64:ff9b::/96), IPv4-compatible (::/96) or 6to4
    (2002::/16) address."""
    if ip in _V6_NAT64 or ip in _V6_IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


# --- URLs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # lowercase ASCII name, or an IP without brackets
    port: int
    target: str  # path and query, as sent on the request line
    host_header: str


# A DNS label (underscores occur in real names). A last label that is all digits or hex
# ("127.1", "2130706433", "0x7f.1") is an IPv4 address in inet_aton's lax syntax, not a name.
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
# Characters allowed unencoded in a request target (RFC 3986 pchar, "/", "?", "%").
_TARGET_SAFE = "/?%:@!$&'()*+,;=-._~"


def _parse(url: str, *, require_https: bool) -> _Target:
    # Whitespace and control characters are where URL parsers disagree with each other.
    if (
        not url
        or len(url) > MAX_URL_LENGTH
        or any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in url)
    ):
        raise UrlNotAllowed("syntax")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlNotAllowed("port" if "port" in str(exc).lower() else "syntax") from exc
    scheme = parts.scheme.lower()
    if scheme not in ({"https"} if require_https else {"http", "https"}):
        raise UrlNotAllowed("scheme")
    if "@" in parts.netloc:
        raise UrlNotAllowed("userinfo")
    raw_host = parts.hostname
    if not raw_host:
        raise UrlNotAllowed("host")
    if port == 0:
        raise UrlNotAllowed("port")

    if parts.netloc.startswith("["):
        ip = _ip(raw_host)
        if not isinstance(ip, ipaddress.IPv6Address) or ip.scope_id:
            raise UrlNotAllowed("host")
        host = str(ip)
        header_host = f"[{host}]"
    elif isinstance(ip4 := _ip(raw_host), ipaddress.IPv4Address):
        host = header_host = str(ip4)
    else:
        try:
            host = raw_host.encode("idna").decode("ascii").lower()
        except UnicodeError as exc:
            raise UrlNotAllowed("host") from exc
        labels = host.removesuffix(".").split(".")
        if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
            raise UrlNotAllowed("host")
        if _NUMERIC_LABEL.match(labels[-1]):
            raise UrlNotAllowed("host")
        header_host = host

    default_port = 443 if scheme == "https" else 80
    effective_port = port or default_port
    if effective_port != default_port:
        header_host = f"{header_host}:{effective_port}"
    target = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_TARGET_SAFE)
    return _Target(scheme, host, effective_port, target, header_host)


def check_url(url: str, *, require_https: bool) -> None:
    """Syntax only (scheme, userinfo, host, port): raises ``UrlNotAllowed``."""
    _parse(url, require_https=require_https)


# --- resolution and connecting ----------------------------------------------------------------


async def default_resolver(host: str, port: int) -> list[str]:
    """The system resolver (getaddrinfo in a thread)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class ResolutionFailed(Exception):
    """The host name did not resolve (or resolved to nothing)."""


async def _checked_addresses(
    host: str, port: int, *, resolver: Resolver, allow_loopback: bool
) -> list[str]:
    """The addresses to connect to, each one already judged; refuses if any one is bad."""
    if _ip(host) is not None:
        addresses = [host]  # an IP literal is judged as is, never resolved
    else:
        try:
            addresses = list(dict.fromkeys(await resolver(host, port)))
        except OSError as exc:  # socket.gaierror
            raise ResolutionFailed(f"{host}: {exc}") from exc
        if not addresses:
            raise ResolutionFailed(f"{host}: no address")
    for address in addresses:
        reason = refusal_reason(address, allow_loopback=allow_loopback)
        if reason is not None:
            raise UrlNotAllowed(reason)
    return addresses


async def check_destination(
    url: str,
    *,
    resolver: Resolver | None = None,
    allow_loopback: bool = False,
    require_https: bool = True,
) -> None:
    """Syntax and resolution, for when an endpoint is created: raises ``UrlNotAllowed``
    (an unresolvable host too). Deliveries check again, since DNS answers change."""
    target = _parse(url, require_https=require_https)
    try:
        await _checked_addresses(
            target.host,
            target.port,
            resolver=resolver or default_resolver,
            allow_loopback=allow_loopback,
        )
    except ResolutionFailed as exc:
        raise UrlNotAllowed("host does not resolve") from exc


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the destination check inside ``connect_tcp``: the
    host is resolved, every address judged, and the inner backend is handed a checked IP, never
    the name, so nothing re-resolves between the check and the connect.

    TLS stays bound to the name: httpcore (``_async/connection.py``, ``_connect``) calls
    ``connect_tcp(host=origin.host)`` and then ``stream.start_tls(server_hostname=sni_hostname
    or origin.host)`` on the stream we return, so SNI and certificate verification use the
    URL's host name while only the TCP connect sees the IP (read in httpcore 1.0.9).
    """

    def __init__(
        self,
        *,
        resolver: Resolver,
        allow_loopback: bool,
        inner: httpcore.AsyncNetworkBackend,
    ) -> None:
        self._resolver = resolver
        self._allow_loopback = allow_loopback
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface, by keyword
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _checked_addresses(
            host, port, resolver=self._resolver, allow_loopback=self._allow_loopback
        )
        # All of them passed the check, so any may be tried, in the resolver's order.
        for address in addresses[:-1]:
            try:
                return await self._connect(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout):
                continue
        return await self._connect(addresses[-1], port, timeout, local_address, socket_options)

    async def _connect(
        self,
        address: str,
        port: int,
        timeout: float | None,  # noqa: ASYNC109 - passed on to httpcore's interface
        local_address: str | None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._inner.connect_tcp(
            address,
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface, by keyword
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UrlNotAllowed("unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


# --- delivering -------------------------------------------------------------------------------


async def _read_capped(response: httpcore.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of the body; the rest is never read (the connection is closed)."""
    stream = response.stream
    if not isinstance(stream, AsyncIterable):  # pragma: no cover - an async pool's always are
        raise TypeError("expected an async response stream")
    received = bytearray()
    chunks = aiter(stream)
    try:
        async for chunk in chunks:
            received += chunk[: limit - len(received)]
            if len(received) >= limit:
                break
    finally:
        # Close the body generator now (which closes the half-read connection), not at GC.
        if isinstance(chunks, AsyncGenerator):
            await chunks.aclose()
    return bytes(received)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]


async def deliver(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    resolver: Resolver | None = None,
    connector: httpcore.AsyncNetworkBackend | None = None,
    allow_loopback: bool = False,
    require_https: bool = True,
    timeout_s: float = 10.0,
    max_response_bytes: int = 65536,
    ssl_context: ssl.SSLContext | None = None,
) -> DeliveryResult:
    """POST ``body`` to ``url`` once. Never raises for network problems or refusals: they are
    described by the result (``refused=True`` means no connection was attempted).

    ``connector`` is the inner network backend (default ``httpcore.AnyIOBackend()``); it only
    ever receives checked IP addresses. ``ssl_context`` defaults to httpcore's (certifi CAs).
    """
    started = time.monotonic()

    def result(
        status: int | None, error: str | None, *, refused: bool = False, excerpt: bytes = b""
    ) -> DeliveryResult:
        return DeliveryResult(
            status_code=status,
            latency_ms=round((time.monotonic() - started) * 1000),
            error=error,
            refused=refused,
            response_excerpt=excerpt[:EXCERPT_BYTES].decode("utf-8", errors="replace"),
        )

    try:
        target = _parse(url, require_https=require_https)
    except UrlNotAllowed as exc:
        return result(None, f"{REFUSED_CODE}: {exc.reason}", refused=True)

    backend = GuardedBackend(
        resolver=resolver or default_resolver,
        allow_loopback=allow_loopback,
        inner=connector or httpcore.AnyIOBackend(),
    )
    # Host is ours to set: httpcore would write an IPv6 literal without its brackets.
    request_headers = [("Host", target.host_header)]
    if not any(k.lower() == "user-agent" for k in headers):
        request_headers.append(("User-Agent", USER_AGENT))
    framing = {"host", "content-length", "transfer-encoding"}  # httpcore frames the body
    request_headers += [(k, v) for k, v in headers.items() if k.lower() not in framing]
    request_url = httpcore.URL(
        scheme=target.scheme, host=target.host, port=target.port, target=target.target
    )
    # httpcore's timeouts are per operation; the outer deadline bounds the whole attempt (DNS
    # included) against a receiver that trickles one byte at a time.
    per_operation = {"connect": timeout_s, "read": timeout_s, "write": timeout_s, "pool": timeout_s}

    status: int | None = None
    excerpt = b""
    try:
        async with (
            asyncio.timeout(timeout_s),
            httpcore.AsyncConnectionPool(
                ssl_context=ssl_context, max_connections=1, retries=0, network_backend=backend
            ) as pool,
            pool.stream(
                "POST",
                request_url,
                headers=request_headers,
                content=body,
                extensions={"timeout": per_operation},
            ) as response,
        ):
            status = response.status
            excerpt = await _read_capped(response, max_response_bytes)
    except UrlNotAllowed as exc:
        return result(None, f"{REFUSED_CODE}: {exc.reason}", refused=True)
    except ResolutionFailed as exc:
        return result(None, f"dns_error: {exc}")
    except (TimeoutError, httpcore.TimeoutException):
        return result(status, f"timeout after {timeout_s:g}s")
    except httpcore.ConnectError as exc:
        return result(None, f"connect_error: {_short(exc)}")
    except (httpcore.NetworkError, httpcore.ProtocolError, OSError) as exc:
        return result(status, f"{type(exc).__name__}: {_short(exc)}")
    return result(status, None, excerpt=excerpt)


# --- a sandbox for test servers -------------------------------------------------------------


async def loopback_resolver(host: str, port: int) -> list[str]:
    """Every name is 127.0.0.1: no DNS query leaves the host (servers under outside test tools)."""
    return ["127.0.0.1"]


class LoopbackOnlyBackend(httpcore.AsyncNetworkBackend):
    """Connects to loopback addresses only; any other address is a connect error. With
    ``loopback_resolver`` it keeps every delivery of a test server on the machine."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface, by keyword
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        ip = _ip(host)
        if ip is None or not ip.is_loopback:
            raise httpcore.ConnectError(f"egress is limited to loopback: {host}")
        return await self._inner.connect_tcp(
            host,
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface, by keyword
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("egress is limited to loopback TCP")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
