"""The egress guard: the one way out of the process to a payload URL.

Every delivery, test event and redelivery is sent by ``Egress.post``. The guard resolves a
host once, refuses the request if any address it resolves to (or the IP literal in the URL)
lies in a loopback, private, link-local, metadata, multicast or other reserved range, and lets
aiohttp connect to exactly the addresses it checked, so a DNS answer cannot change between
the check and the connection. Redirects are never followed. One deadline covers the whole
attempt; a response body is read up to a cap and no further.

``HOOKLINE_EGRESS_ALLOW`` (CIDRs) turns ranges back on, for self-hosted receivers and tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from .errors import PayloadTooLarge
from .models import ErrorKind

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_BLOCKED: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "'this network'"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "carrier-grade NAT"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("168.63.129.16/32", "cloud platform metadata"),
    ("::/8", "reserved IPv6 (loopback, unspecified)"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    ("2001::/23", "IETF protocol assignments"),
    ("2001:db8::/32", "documentation"),
    ("fc00::/7", "unique local (private)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)
BLOCKED_NETWORKS: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(cidr), why) for cidr, why in _BLOCKED
)
#: cloud metadata and link-local: an allowlist alone never opens these
METADATA_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(cidr) for cidr in ("169.254.0.0/16", "168.63.129.16/32", "fe80::/10")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


class EgressBlocked(Exception):
    """The egress guard refused the destination."""


def effective_address(ip: IPAddress) -> IPAddress:
    """The address that decides: an IPv6 address carrying an IPv4 one (mapped, compatible,
    NAT64, 6to4) is judged as that IPv4 address."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return ip
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    packed = ip.packed
    if ip in _NAT64 or (packed[:12] == bytes(12) and int(ip) > 1):
        return ipaddress.IPv4Address(packed[12:])
    return ip


def blocked_reason(
    ip: IPAddress, allow: Iterable[IPNetwork] = (), allow_metadata: bool = False
) -> str | None:
    """Why the guard refuses ``ip`` (a range's description), or None when it may be reached.
    Metadata and link-local ranges open only with ``allow_metadata`` as well as the allowlist."""
    effective = effective_address(ip)
    metadata = any(effective in network for network in METADATA_NETWORKS)
    if (not metadata or allow_metadata) and any(
        ip in network or effective in network for network in allow
    ):
        return None
    for network, why in BLOCKED_NETWORKS:
        if effective in network:
            return f"{effective} is {why}" if effective == ip else f"{ip} ({effective}) is {why}"
    return None


_NUMERIC_HOST = frozenset("0123456789abcdefxABCDEFX.")


def ip_literal(host: str) -> IPAddress | None:
    """The address a host spells, however it spells it: ``127.0.0.1``, ``[::1]``, and the
    legacy IPv4 forms a resolver would also accept (``2130706433``, ``0x7f000001``,
    ``0177.0.0.1``, ``127.1``)."""
    bare = host.strip("[]").split("%")[0]
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    if bare and set(bare) <= _NUMERIC_HOST and any(c.isdigit() for c in bare):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(bare))
        except OSError:
            return None
    return None


#: URLs remembered as having passed the pre-lookup checks, at most
_PASSED_KEPT = 10_000


class EgressGuard:
    def __init__(
        self,
        allow: Iterable[IPNetwork] = (),
        *,
        allow_metadata: bool = False,
        https_only: bool = False,
    ) -> None:
        self.allow = tuple(allow)
        self.allow_metadata = allow_metadata
        self.https_only = https_only
        self._passed: set[str] = set()

    def check_ip(self, ip: IPAddress) -> None:
        reason = blocked_reason(ip, self.allow, self.allow_metadata)
        if reason is not None:
            what = (
                "HOOKLINE_EGRESS_ALLOW and HOOKLINE_EGRESS_ALLOW_METADATA"
                if any(effective_address(ip) in net for net in METADATA_NETWORKS)
                else "HOOKLINE_EGRESS_ALLOW"
            )
            raise EgressBlocked(
                f"blocked by the egress guard: {reason}; to deliver there, allow it with {what}"
            )

    def check_url(self, url: str) -> None:
        """Refuse what can be refused before any lookup: the scheme, ``localhost``, and a host
        that spells a blocked address. Names are checked again when they resolve."""
        if url in self._passed:
            return  # the rules never change in a process: a URL that passed always passes
        parts = urlsplit(url)
        if self.https_only and parts.scheme != "https":
            raise EgressBlocked(
                "blocked by the egress guard: only https:// URLs are allowed "
                "(HOOKLINE_EGRESS_HTTPS_ONLY)"
            )
        host = (parts.hostname or "").rstrip(".").lower()
        if host == "localhost" or host.endswith(".localhost"):
            self.check_ip(ipaddress.IPv4Address("127.0.0.1"))
        ip = ip_literal(host)
        if ip is not None:
            self.check_ip(ip)
        if len(self._passed) >= _PASSED_KEPT:
            self._passed.clear()
        self._passed.add(url)


class _GuardedResolver(AbstractResolver):
    """Resolves through the system resolver (or the one given) and refuses the name if any
    answer is blocked: a name that also points inside cannot be used to get there."""

    def __init__(self, guard: EgressGuard, inner: AbstractResolver | None = None) -> None:
        self._guard = guard
        self._inner = inner or aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        for answer in answers:
            self._guard.check_ip(ipaddress.ip_address(answer["host"]))
        return answers

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpResult:
    """What one POST came to: a response, an error, or a response cut short by an error."""

    request_headers: dict[str, str]
    status: int | None
    headers: dict[str, str] | None
    body: bytes | None
    error_kind: ErrorKind | None
    error_message: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.error_kind is None


def _joined(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in headers:
        name = str(key)  # aiohttp's case-insensitive istr: stored as plain text
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def _classify(exc: BaseException) -> tuple[ErrorKind, str]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for link in chain:
        if isinstance(link, EgressBlocked):
            return ErrorKind.BLOCKED, str(link)
    if isinstance(exc, TimeoutError):
        return ErrorKind.TIMEOUT, "no complete answer within the attempt deadline"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return ErrorKind.DNS, f"cannot resolve the host: {exc.os_error}"
    if isinstance(exc, aiohttp.ClientSSLError) or any(
        isinstance(link, ssl.SSLError) for link in chain
    ):
        return ErrorKind.TLS, f"TLS failed: {exc}"
    if any(isinstance(link, ConnectionRefusedError) for link in chain):
        return ErrorKind.CONNECTION_REFUSED, f"connection refused: {exc}"
    return ErrorKind.CONNECTION, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


#: hands a request for a test inbox (token, headers, body) over in-process; False: no inbox
LocalCapture = Callable[[str, dict[str, str], bytes], Awaitable[bool]]


class Egress:
    """Sends POSTs to payload URLs through the guard, over one keep-alive pool.

    URLs under ``local_prefix`` (hookline's own test inboxes) are handed to ``local_capture``
    instead: they never touch the network.
    """

    def __init__(
        self,
        guard: EgressGuard,
        *,
        timeout: float,
        body_limit: int,
        max_connections: int = 100,
        local_prefix: str | None = None,
        local_capture: LocalCapture | None = None,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.guard = guard
        self._resolver = resolver
        self._local_prefix = local_prefix
        self._local_capture = local_capture
        self._timeout = timeout
        self._body_limit = body_limit
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            resolver=_GuardedResolver(self.guard, self._resolver),
            limit=self._max_connections,
            limit_per_host=0,
            ttl_dns_cache=10,
        )
        return aiohttp.ClientSession(
            connector=connector,
            # the deadline is the asyncio.timeout in post(), around everything: a second timer
            # per request here would only cost time
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=False,
            trust_env=False,
            skip_auto_headers=("Accept-Encoding",),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> HttpResult:
        if self._local_capture and self._local_prefix and url.startswith(self._local_prefix):
            return await self._deliver_locally(url, headers, body)
        if self._session is None:
            self._session = self._open()
        started = time.perf_counter()
        sent = dict(headers)
        status: int | None = None
        response_headers: dict[str, str] | None = None
        chunks: list[bytes] = []
        try:
            async with asyncio.timeout(self._timeout):
                self.guard.check_url(url)
                async with self._session.post(
                    url, data=body, headers=sent, allow_redirects=False
                ) as response:
                    sent = _joined(response.request_info.headers.items())
                    status = response.status
                    response_headers = _joined(response.headers.items())
                    await self._read_capped(response, chunks)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            kind, message = _classify(exc)
            return self._result(sent, status, response_headers, chunks, started, kind, message)
        kind_and_message = _judge(status, response_headers)
        return self._result(sent, status, response_headers, chunks, started, *kind_and_message)

    async def _deliver_locally(
        self, url: str, headers: Mapping[str, str], body: bytes
    ) -> HttpResult:
        assert self._local_capture is not None and self._local_prefix is not None
        started = time.perf_counter()
        token = url[len(self._local_prefix) :].split("?")[0].split("/")[0]
        sent = {**headers, "Content-Length": str(len(body))}
        try:
            status = 200 if await self._local_capture(token, sent, body) else 404
        except PayloadTooLarge:
            status = 413
        answer = b'{"captured": true}' if status == 200 else b'{"captured": false}'
        response_headers = {"Content-Type": "application/json"}
        return self._result(
            sent, status, response_headers, [answer], started, *_judge(status, None)
        )

    async def _read_capped(self, response: aiohttp.ClientResponse, chunks: list[bytes]) -> None:
        remaining = self._body_limit
        while remaining > 0:
            chunk = await response.content.read(remaining)
            if not chunk:
                return
            chunks.append(chunk)
            remaining -= len(chunk)
        if not response.content.at_eof():
            # the rest is never read: drop the connection rather than drain it
            response.close()

    def _result(
        self,
        sent: dict[str, str],
        status: int | None,
        headers: dict[str, str] | None,
        chunks: list[bytes],
        started: float,
        kind: ErrorKind | None,
        message: str | None,
    ) -> HttpResult:
        return HttpResult(
            request_headers=sent,
            status=status,
            headers=headers,
            body=b"".join(chunks) if status is not None else None,
            error_kind=kind,
            error_message=message,
            duration_ms=round((time.perf_counter() - started) * 1000),
        )


def _judge(
    status: int | None, headers: Mapping[str, Any] | None
) -> tuple[ErrorKind | None, str | None]:
    assert status is not None
    if 200 <= status < 300:
        return None, None
    if 300 <= status < 400:
        location = (headers or {}).get("Location", "(no Location header)")
        return (
            ErrorKind.REDIRECT,
            f"HTTP {status} redirect to {location}; redirects are not followed",
        )
    return ErrorKind.BAD_STATUS, f"HTTP {status}"
