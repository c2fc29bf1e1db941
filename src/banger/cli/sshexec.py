"""Reaching a guest from the CLI: the system `ssh`, so interactive sessions get a real TTY,
with banger's key and banger's known_hosts (the VM's pinned host key, never TOFU)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Sequence

KEX_ALGORITHMS = "curve25519-sha256,curve25519-sha256@libssh.org"


def ssh_argv(
    access: dict[str, str], command: Sequence[str], *, cwd: str | None = None,
    interactive: bool,
) -> list[str]:
    argv = _options(access)
    if interactive:
        argv.append("-t")
    else:
        argv += ["-o", "BatchMode=yes"]
    argv.append(_destination(access))
    remote = shlex.join(command) if command else ""
    if cwd:
        remote = f"cd {shlex.quote(cwd)} && " + (remote or "exec \"$SHELL\" -l")
    if remote:
        argv += ["--", remote]
    return argv


def loopback_forwarded(access: dict[str, str]) -> bool:
    """Whether the guest's sshd is reached through a loopback port (user-mode networking):
    its other ports are then reachable only through that sshd."""
    return int(access.get("ssh_port") or 22) != 22


def forward_argv(access: dict[str, str], local_port: int, guest_port: int) -> list[str]:
    """ssh forwarding 127.0.0.1:`local_port` here to the guest's own address and
    `guest_port`, through the guest's sshd, until interrupted."""
    return [
        *_options(access), "-N", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
        "-L", f"127.0.0.1:{local_port}:{access['ip']}:{guest_port}", _destination(access),
    ]


def _destination(access: dict[str, str]) -> str:
    return f"{access['user']}@{access.get('ssh_host') or access['ip']}"


def _options(access: dict[str, str]) -> list[str]:
    argv = [
        "ssh",
        "-F", "none",
        "-i", access["identity_file"],
        "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={access['known_hosts']}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "LogLevel=ERROR",
        # Through a remote host (ProxyCommand) it covers the hop too.
        "-o", f"ConnectTimeout={30 if access.get('proxy_command') else 10}",
        "-o", "ServerAliveInterval=30",
        # The guest is on a host-only bridge; OpenSSH's default post-quantum hybrid kex
        # costs ~0.15 s per connection in a TCG guest.
        "-o", f"KexAlgorithms={KEX_ALGORITHMS}",
    ]
    if access.get("proxy_command"):  # a guest on a remote host's bridge
        argv += ["-o", f"ProxyCommand={access['proxy_command']}"]
    if loopback_forwarded(access):
        # Every guest's key is pinned under its name: the port of a deleted VM is reused.
        argv += ["-p", str(access["ssh_port"]), "-o", f"HostKeyAlias={access['name']}.vm"]
    return argv


def exec_ssh(argv: list[str]) -> None:
    """Replace this process with ssh (the interactive path)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)


def run_ssh(argv: list[str]) -> int:
    return subprocess.call(argv)
