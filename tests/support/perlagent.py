"""The real banger-agent, run on this host over a socketpair instead of its virtio-serial
port, as a stand-in guest for the exec channel's tests (it runs its commands here)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
import subprocess
from collections.abc import Awaitable, Callable, Iterator

import pytest

from banger.core import agent

Opener = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
# The agent finds its channel here; the stand-in gets an inherited fd instead.
_CHANNEL = re.compile(r"# --- The host channel.*?\n(?=sub next_line)", re.S)


def agent_on_fd(fd: int) -> str:
    script, found = _CHANNEL.subn(
        f"my ($listener, $buf) = (undef, '');\nopen(my $fh, '+<&=', {fd}) or die \"fd: $!\";\n",
        agent.AGENT_SCRIPT,
    )
    assert found == 1
    return script


@contextlib.contextmanager
def perl_agent() -> Iterator[Opener]:
    """An opener of the channel to a running agent (skips the test without perl)."""
    perl = shutil.which("perl")
    if perl is None:
        pytest.skip("no perl")
    host, guest = socket.socketpair()
    proc = subprocess.Popen([perl, "-e", agent_on_fd(guest.fileno())], pass_fds=[guest.fileno()])
    guest.close()

    async def opener() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(sock=host)

    try:
        yield opener
    finally:
        proc.kill()
        proc.wait()
        host.close()
