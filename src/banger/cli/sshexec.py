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
    if interactive:
        argv.append("-t")
    else:
        argv += ["-o", "BatchMode=yes"]
    argv.append(f"{access['user']}@{access['ip']}")
    remote = shlex.join(command) if command else ""
    if cwd:
        remote = f"cd {shlex.quote(cwd)} && " + (remote or "exec \"$SHELL\" -l")
    if remote:
        argv += ["--", remote]
    return argv


def exec_ssh(argv: list[str]) -> None:
    """Replace this process with ssh (the interactive path)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)


def run_ssh(argv: list[str]) -> int:
    return subprocess.call(argv)
