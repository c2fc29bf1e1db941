"""The DNS server's sockets (UDP and TCP on one address), the upstream forwarder and the
systemd-resolved wiring. What to answer is decided elsewhere (`banger.core.dns`); this module
only moves bytes and bounds how many of them are in flight."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol, cast

from banger.core import dns
from banger.host import hostinfo
from banger.host.processes import CommandRunner

log = logging.getLogger("banger.dns")

# bytes in, bytes (or nothing) out; the argument after the packet is the client's address.
PacketHandler = Callable[[bytes, str], Awaitable[bytes | None]]

# Linux's IP_FREEBIND (not exported by every Python): bind the bridge address before the
# bridge exists, so the server is up from daemon start and answers once the bridge appears.
_IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
_MAX_INFLIGHT = 256
_MAX_TCP_CLIENTS = 32
_TCP_IDLE = 10.0


class DNSListener(Protocol):
    async def start(self, address: str, port: int, handler: PacketHandler) -> None:
        """Serve `handler` on UDP and TCP `address:port`; raise OSError if it cannot bind."""
        ...

    async def close(self) -> None: ...


class Forwarder(Protocol):
    async def forward(
        self, packet: bytes, query: dns.Query, upstreams: list[tuple[str, int]]
    ) -> bytes | None:
        """The first upstream answer to `query`, or None if none answered in time."""
        ...


def _bound_socket(kind: socket.SocketKind, address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    try:
        if kind == socket.SOCK_STREAM:
            # Restarts must not wait for TIME_WAIT; for UDP the option would let two
            # servers share the port silently, so a taken port fails loudly instead.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IP, _IP_FREEBIND, 1)
        sock.bind((address, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, handler: PacketHandler) -> None:
        self._handler = handler
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if len(self._tasks) >= _MAX_INFLIGHT:
            return  # overloaded: dropping is what a client's retry expects
        task = asyncio.get_running_loop().create_task(self._answer(data, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, data: bytes, addr: tuple[str | object, int]) -> None:
        try:
            response = await self._handler(data, str(addr[0]))
        except Exception:
            log.exception("DNS handler failed")
            return
        if response is not None and self._transport is not None:
            self._transport.sendto(response, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("DNS socket error: %s", exc)

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()


class AsyncioDNSListener:
    def __init__(self) -> None:
        self._udp: asyncio.DatagramTransport | None = None
        self._protocol: _UDPProtocol | None = None
        self._tcp: asyncio.Server | None = None
        self._tcp_clients = 0

    async def start(self, address: str, port: int, handler: PacketHandler) -> None:
        loop = asyncio.get_running_loop()
        udp_sock = _bound_socket(socket.SOCK_DGRAM, address, port)
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _UDPProtocol(handler), sock=udp_sock
        )
        self._udp, self._protocol = transport, protocol
        try:
            tcp_sock = _bound_socket(socket.SOCK_STREAM, address, port)
            self._tcp = await asyncio.start_server(
                lambda r, w: self._serve_tcp(r, w, handler), sock=tcp_sock
            )
        except OSError:
            # UDP is what resolvers use; TCP only matters for truncated answers.
            log.warning("DNS over TCP unavailable on %s:%d", address, port, exc_info=True)

    async def _serve_tcp(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: PacketHandler
    ) -> None:
        if self._tcp_clients >= _MAX_TCP_CLIENTS:
            writer.close()
            return
        self._tcp_clients += 1
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if peer else ""
        try:
            while True:
                length_bytes = await asyncio.wait_for(reader.readexactly(2), _TCP_IDLE)
                (length,) = struct.unpack("!H", length_bytes)
                if length > dns.MAX_QUERY:
                    return
                packet = await asyncio.wait_for(reader.readexactly(length), _TCP_IDLE)
                response = await handler(packet, client)
                if response is None:
                    return
                writer.write(struct.pack("!H", len(response)) + response)
                await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            return
        except Exception:
            log.exception("DNS over TCP failed")
        finally:
            self._tcp_clients -= 1
            writer.close()

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._protocol is not None:
            self._protocol.cancel()
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 1.0)
            self._tcp = None


class _Collect(asyncio.DatagramProtocol):
    def __init__(self, query: dns.Query) -> None:
        self._query = query
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        # A connected socket only hears its upstream; the id and question must match too.
        if not self.answer.done() and dns.is_answer_to(self._query, data):
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


class UDPForwarder:
    """One fresh socket (random source port) per query and upstream, so answers cannot be
    spoofed onto a port an attacker already knows."""

    def __init__(self, timeout: float = 2.0) -> None:
        self._timeout = timeout

    async def forward(
        self, packet: bytes, query: dns.Query, upstreams: list[tuple[str, int]]
    ) -> bytes | None:
        loop = asyncio.get_running_loop()
        for host, port in upstreams:
            try:
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda: _Collect(query), remote_addr=(host, port)
                )
            except OSError as exc:
                log.debug("DNS upstream %s unreachable: %s", host, exc)
                continue
            try:
                transport.sendto(packet)
                return await asyncio.wait_for(protocol.answer, self._timeout)
            except (OSError, TimeoutError) as exc:
                log.debug("DNS upstream %s did not answer: %s", host, exc)
            finally:
                transport.close()
        return None


def read_resolv_conf(path: Path = Path("/etc/resolv.conf")) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


class ResolvedLinks(Protocol):
    """Per-link DNS routing in systemd-resolved, for the bridge."""

    def available(self) -> bool:
        """resolvectl is installed and systemd-resolved is running."""
        ...

    async def route(self, link: str, server: str, domain: str) -> None: ...
    async def revert(self, link: str) -> None: ...


class Resolvectl:
    def __init__(self, runner: CommandRunner, run_dir: Path = Path("/run/systemd/resolve")):
        self._run = runner
        self._run_dir = run_dir

    def available(self) -> bool:
        # resolved's varlink socket exists only while it runs (and is gone in containers
        # and on hosts that never used it).
        return (
            hostinfo.which("resolvectl") is not None
            and os.path.exists(self._run_dir / "io.systemd.Resolve")
        )

    async def route(self, link: str, server: str, domain: str) -> None:
        await self._run.run(["resolvectl", "dns", link, server], privileged=True)
        await self._run.run(["resolvectl", "domain", link, f"~{domain}"], privileged=True)
        # Only queries for the routing domain go to this link, never the host's others.
        await self._run.run(["resolvectl", "default-route", link, "false"], privileged=True)

    async def revert(self, link: str) -> None:
        await self._run.run(["resolvectl", "revert", link], privileged=True, check=False)
