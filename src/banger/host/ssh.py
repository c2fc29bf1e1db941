"""Guest access from the daemon: key generation, the readiness probe and command execution."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from banger.core.errors import HostError, SSHTimeout
from banger.host.processes import CommandRunner


class KeyMaker(Protocol):
    async def make_ed25519(self, path: Path, comment: str) -> str:
        """Create `path` (private, 0600) and `path.pub`; return the public key line."""
        ...


class SSHKeygen:
    def __init__(self, runner: CommandRunner) -> None:
        self._run = runner

    async def make_ed25519(self, path: Path, comment: str) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        await self._run.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)]
        )
        path.chmod(0o600)
        return path.with_name(path.name + ".pub").read_text().strip()


class GuestProbe(Protocol):
    async def wait_ready(
        self, ip: str, port: int = 22, *, client_key: Path, host_key: str, timeout: float,
        alive: Callable[[], bool], login: bool = True,
    ) -> None:
        """Wait until the guest's sshd at `ip`:`port` answers; with `login`, until a real
        login (our key, the pinned host key) runs a command."""
        ...


class AsyncSSHProbe:
    """Connects with banger's key, trusting only the VM's pinned host key."""

    async def wait_ready(
        self, ip: str, port: int = 22, *, client_key: Path, host_key: str, timeout: float,
        alive: Callable[[], bool], login: bool = True,
    ) -> None:
        from banger.host.sshlib import load_asyncssh

        asyncssh = load_asyncssh()

        where = ip if port == 22 else f"[{ip}]:{port}"
        trusted = asyncssh.import_known_hosts(f"{where} {host_key}\n")
        deadline = time.monotonic() + timeout
        last_error = "no answer"
        while time.monotonic() < deadline:
            if not alive():
                raise HostError("the VM exited while booting", hint="see `banger vm logs`")
            # Cheap first: until sshd sends its banner, a full ssh attempt only burns time
            # (a connect to a guest whose network is not up yet hangs until its timeout).
            if not await _sshd_banner(ip, port):
                last_error = "sshd not answering yet"
                await asyncio.sleep(0.1)
                continue
            if not login:
                return
            try:
                async with asyncssh.connect(
                    ip, port, username="root", client_keys=[str(client_key)],
                    known_hosts=trusted,
                    connect_timeout=10, agent_path=None, config=[],
                ) as conn:
                    await conn.run("true", check=True, timeout=10)
                    return
            except (OSError, asyncssh.Error, TimeoutError) as exc:
                last_error = str(exc) or type(exc).__name__
            await asyncio.sleep(0.1)
        raise SSHTimeout(
            f"ssh to {where} not ready after {timeout:.0f}s ({last_error})",
            hint="the VM is kept; see `banger vm logs NAME`",
        )


# sshd execs itself anew for each connection, which a guest short of CPU (TCG on a busy
# host) may take seconds to do; an attempt given up early leaves that sshd running in the
# guest, and the next one starts another: measured at guest load 8 with a 2 s wait.
_BANNER_TIMEOUT = 15.0


async def _sshd_banner(ip: str, port: int = 22) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), 0.5)
    except (OSError, TimeoutError):
        return False
    try:
        line = await asyncio.wait_for(reader.readline(), _BANNER_TIMEOUT)
        return line.startswith(b"SSH-")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
