"""The egress guard against real sockets: canary listeners on loopback that must receive no
connection. Names are answered by a stub resolver, the only stand-in here: DNS answers chosen
by an attacker are a failure this machine cannot make for real."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from hookline.egress import Egress, EgressGuard
from hookline.models import ErrorKind


class StubResolver(AbstractResolver):
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError(f"no such name: {host}")
        return [
            {"hostname": host, "host": address, "port": port, "family": socket.AF_INET,
             "proto": 0, "flags": 0}
            for address in self.answers[host]
        ]  # fmt: skip

    async def close(self) -> None:
        pass


class Canary:
    """A listener that counts every connection made to it."""

    def __init__(self) -> None:
        self.connections = 0

    async def start(self, host: str) -> int:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        self.server = await asyncio.start_server(on_connect, host, 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def canary() -> AsyncIterator[tuple[Canary, int]]:
    listener = Canary()
    port = await listener.start("127.0.0.2")
    yield listener, port
    await listener.stop()


async def post(guard: EgressGuard, resolver: StubResolver, url: str):
    egress = Egress(guard, timeout=2, body_limit=1024, resolver=resolver)
    try:
        return await egress.post(url, {"Content-Type": "application/json"}, b"{}")
    finally:
        await egress.close()


@pytest.mark.parametrize(
    ("name", "answers"),
    [
        ("inside.test", ["127.0.0.2"]),  # a name that points inside
        ("both.test", ["127.0.0.2", "127.0.0.3"]),  # every answer blocked
        ("mapped.test", ["::ffff:127.0.0.2"]),  # an IPv4-mapped spelling of it
    ],
)
async def test_names_resolving_inside_are_refused_and_nothing_connects(canary, name, answers):
    listener, port = canary
    resolver = StubResolver({name: answers})
    result = await post(EgressGuard(), resolver, f"http://{name}:{port}/hook")
    assert result.error_kind is ErrorKind.BLOCKED, result
    assert listener.connections == 0
    assert resolver.asked == [name]


@pytest.mark.parametrize(
    "host", ["127.0.0.2", "2130706434", "0x7f000002", "0177.0.0.2", "[::ffff:127.0.0.2]"]
)
async def test_every_spelling_of_an_inside_address_is_refused(canary, host):
    listener, port = canary
    result = await post(EgressGuard(), StubResolver({}), f"http://{host}:{port}/hook")
    assert result.error_kind is ErrorKind.BLOCKED, result
    assert listener.connections == 0


async def test_a_dns_failure_fails_closed(canary):
    listener, port = canary
    result = await post(EgressGuard(), StubResolver({}), f"http://unknown.test:{port}/hook")
    assert result.error_kind is ErrorKind.DNS and result.status is None
    assert listener.connections == 0


async def test_the_allowlist_opens_exactly_its_range_and_connects_to_the_checked_address(
    canary,
):
    listener, port = canary
    allowed = EgressGuard([ipaddress.ip_network("127.0.0.2/32")])
    resolver = StubResolver({"ours.test": ["127.0.0.2"], "theirs.test": ["127.0.0.3"]})
    ok = await post(allowed, resolver, f"http://ours.test:{port}/hook")
    assert ok.status == 200 and listener.connections == 1
    refused = await post(allowed, resolver, f"http://theirs.test:{port}/hook")
    assert refused.error_kind is ErrorKind.BLOCKED and listener.connections == 1
