"""The host side of guest networking: one bridge, one TAP per VM (via `ip`)."""

from __future__ import annotations

import json
import socket
from typing import Protocol

from banger.core.errors import HostError
from banger.host.processes import CommandRunner


class HostNetworkAdapter(Protocol):
    async def ensure_bridge(self, name: str, ip: str, prefix_len: int) -> None: ...
    async def create_tap(self, tap: str, bridge: str) -> None: ...
    async def delete_tap(self, tap: str) -> None: ...
    async def list_taps(self, prefix: str, bridge: str) -> list[str]:
        """TAPs named with `prefix` attached to `bridge` (only ours, never another
        installation's)."""
        ...
    async def link_exists(self, name: str) -> bool: ...


class IPRoute2Network:
    def __init__(self, runner: CommandRunner) -> None:
        self._run = runner

    async def link_exists(self, name: str) -> bool:
        result = await self._run.run(["ip", "-json", "link", "show", "dev", name], check=False)
        return result.returncode == 0

    async def ensure_bridge(self, name: str, ip: str, prefix_len: int) -> None:
        if not await self.link_exists(name):
            await self._run.run(["ip", "link", "add", name, "type", "bridge"], privileged=True)
        addrs = await self._run.run(["ip", "-json", "addr", "show", "dev", name])
        have = {
            f"{a['local']}/{a['prefixlen']}"
            for link in json.loads(addrs.stdout or "[]")
            for a in link.get("addr_info", [])
            if a.get("family") == "inet"
        }
        if f"{ip}/{prefix_len}" not in have:
            await self._run.run(
                ["ip", "addr", "add", f"{ip}/{prefix_len}", "dev", name], privileged=True
            )
        await self._run.run(["ip", "link", "set", name, "up"], privileged=True)

    async def create_tap(self, tap: str, bridge: str) -> None:
        if await self.link_exists(tap):
            await self.delete_tap(tap)
        await self._run.run(["ip", "tuntap", "add", "dev", tap, "mode", "tap"], privileged=True)
        try:
            await self._run.run(["ip", "link", "set", tap, "master", bridge], privileged=True)
            await self._run.run(["ip", "link", "set", tap, "up"], privileged=True)
        except HostError:
            await self.delete_tap(tap)
            raise

    async def delete_tap(self, tap: str) -> None:
        if await self.link_exists(tap):
            await self._run.run(["ip", "link", "del", "dev", tap], privileged=True, check=False)

    async def list_taps(self, prefix: str, bridge: str) -> list[str]:
        result = await self._run.run(["ip", "-json", "link", "show", "type", "tun"], check=False)
        if result.returncode != 0:
            return []
        return [
            link["ifname"] for link in json.loads(result.stdout or "[]")
            if link.get("ifname", "").startswith(prefix) and link.get("master") == bridge
        ]


class LoopbackPorts(Protocol):
    """TCP ports on 127.0.0.1 (user-mode networking forwards one to each guest's sshd)."""

    def is_free(self, port: int) -> bool: ...
    def pick_free(self) -> int: ...


class HostLoopbackPorts:
    def is_free(self, port: int) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    def pick_free(self) -> int:
        # The kernel's choice, released at once for QEMU to bind: another program could
        # take it in between, and QEMU then fails to start with "could not set up host
        # forwarding rule", which the start reports.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        return port
