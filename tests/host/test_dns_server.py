"""The DNS server's sockets and the forwarder, on loopback only."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from banger.core import dns
from banger.host import hostinfo
from banger.host.dns import AsyncioDNSListener, Resolvectl, UDPForwarder
from tests.support.dns import a_records, query, rcode
from tests.support.host_fakes import FakeRunner

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind((LOOPBACK, 0))
        port: int = udp.getsockname()[1]
    return port


async def handler(packet: bytes, client: str) -> bytes | None:
    decision = dns.respond(packet, {"web": "172.16.0.3"}.get, may_forward=False)
    return decision.packet if isinstance(decision, dns.Reply) else None


@pytest.fixture
async def server() -> AsyncIterator[int]:
    listener = AsyncioDNSListener()
    port = free_port()
    await listener.start(LOOPBACK, port, handler)
    try:
        yield port
    finally:
        await listener.close()


async def udp_ask(port: int, packet: bytes, timeout: float = 2.0) -> bytes:
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            if not answer.done():
                answer.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=(LOOPBACK, port))
    try:
        transport.sendto(packet)
        return await asyncio.wait_for(answer, timeout)
    finally:
        transport.close()


async def test_udp_and_tcp_answers(server: int) -> None:
    assert a_records(await udp_ask(server, query("web.vm"))) == ["172.16.0.3"]
    reader, writer = await asyncio.open_connection(LOOPBACK, server)
    for name in ("web.vm", "nope.vm"):  # two queries on one connection
        packet = query(name)
        writer.write(struct.pack("!H", len(packet)) + packet)
        await writer.drain()
        (length,) = struct.unpack("!H", await reader.readexactly(2))
        answer = await reader.readexactly(length)
        assert rcode(answer) == (dns.NOERROR if name == "web.vm" else dns.NXDOMAIN)
    writer.close()


async def test_garbage_does_not_stop_the_server(server: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        for size in (0, 1, 12, 13, 300, 5000, 60000):
            raw.sendto(bytes(range(256)) * (size // 256) + b"\xff" * (size % 256),
                       (LOOPBACK, server))
    reader, writer = await asyncio.open_connection(LOOPBACK, server)
    writer.write(b"\xff\xff" + b"x" * 100)  # announces more than a query may be
    await writer.drain()
    assert await reader.read() == b""
    writer.close()
    assert a_records(await udp_ask(server, query("web.vm"))) == ["172.16.0.3"]


async def test_binding_a_missing_address_still_works_with_freebind() -> None:
    listener = AsyncioDNSListener()
    # 192.0.2.1 (documentation) is not on any interface here; nothing is ever sent to it.
    await listener.start("192.0.2.1", free_port(), handler)
    await listener.close()


async def test_forwarder_relays_only_the_matching_answer() -> None:
    loop = asyncio.get_running_loop()
    seen: list[bytes] = []

    class Upstream(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            seen.append(data)
            asked = dns.parse_query(data)
            wrong = dns.build_response(dns.parse_query(query("other.example", ident=asked.id)),
                                       dns.NOERROR)
            self.transport.sendto(wrong, addr)  # type: ignore[attr-defined]
            self.transport.sendto(dns.build_response(asked, dns.NXDOMAIN), addr)  # type: ignore[attr-defined]

    port = free_port()
    transport, _ = await loop.create_datagram_endpoint(Upstream, local_addr=(LOOPBACK, port))
    try:
        packet = query("example.com", ident=99)
        asked = dns.parse_query(packet)
        answer = await UDPForwarder(timeout=2).forward(packet, asked, [(LOOPBACK, port)])
        assert answer is not None and rcode(answer) == dns.NXDOMAIN
        assert seen == [packet]
        # An upstream that never answers: None after the timeout, then the next one.
        silent = free_port()
        answer = await UDPForwarder(timeout=0.2).forward(
            packet, asked, [(LOOPBACK, silent), (LOOPBACK, port)]
        )
        assert answer is not None and rcode(answer) == dns.NXDOMAIN
        assert await UDPForwarder(timeout=0.2).forward(packet, asked, [(LOOPBACK, silent)]) \
            is None
    finally:
        transport.close()


async def test_resolvectl_routes_the_zone_to_the_bridge_and_reverts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = FakeRunner()
    resolved = Resolvectl(runner, run_dir=tmp_path)
    monkeypatch.setattr(hostinfo, "which", lambda tool: f"/usr/bin/{tool}")
    assert not resolved.available()  # resolved is not running
    (tmp_path / "io.systemd.Resolve").touch()
    assert resolved.available()
    monkeypatch.setattr(hostinfo, "which", lambda tool: None)
    assert not resolved.available()

    await resolved.route("banger0", "172.16.0.1", "vm")
    await resolved.revert("banger0")
    assert runner.calls == [
        ("resolvectl", "dns", "banger0", "172.16.0.1"),
        ("resolvectl", "domain", "banger0", "~vm"),
        ("resolvectl", "default-route", "banger0", "false"),
        ("resolvectl", "revert", "banger0"),
    ]


async def test_a_taken_port_fails_loudly(server: int) -> None:
    with pytest.raises(OSError):
        await AsyncioDNSListener().start(LOOPBACK, server, handler)
