"""Running host commands. Every adapter goes through a CommandRunner so unit tests can swap
in a fake (tests/support/host_fakes.py) that records calls instead of touching the machine."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from banger.core.errors import HostError, MissingTool, PermissionDenied

log = logging.getLogger("banger.host")


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class CommandRunner(Protocol):
    async def run(
        self, argv: Sequence[str], *, check: bool = True, privileged: bool = False,
        input: bytes | None = None,
    ) -> Result: ...


def _short(text: str, limit: int = 400) -> str:
    text = " ".join(text.strip().split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SubprocessRunner:
    """Runs argv directly (no shell). `privileged` commands go through `sudo -n` when banger
    itself is not root, so a missing sudo rule fails fast instead of prompting."""

    def __init__(self, *, env: dict[str, str] | None = None) -> None:
        self._env = env
        self._is_root = os.geteuid() == 0

    async def run(
        self, argv: Sequence[str], *, check: bool = True, privileged: bool = False,
        input: bytes | None = None,
    ) -> Result:
        args = list(argv)
        if privileged and not self._is_root:
            args = ["sudo", "-n", *args]
        if shutil.which(args[0]) is None:
            raise MissingTool(f"{args[0]} not found on PATH")
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._env,
        )
        out, err = await proc.communicate(input)
        log.debug("%s: exit %s in %.0f ms", " ".join(args[:4]), proc.returncode,
                  (time.monotonic() - started) * 1000)
        result = Result(
            tuple(args), proc.returncode or 0, out.decode(errors="replace"),
            err.decode(errors="replace"),
        )
        if check and result.returncode != 0:
            detail = _short(result.stderr or result.stdout) or f"exit {result.returncode}"
            message = f"`{' '.join(argv)}` failed: {detail}"
            if "password is required" in result.stderr or "Operation not permitted" in detail:
                raise PermissionDenied(message)
            raise HostError(message)
        return result


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def pid_cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [part.decode(errors="replace") for part in f.read().split(b"\0") if part]
    except OSError:
        return []


def process_argvs() -> Iterator[tuple[int, list[str]]]:
    """Every other process on the host with its argv (kernel threads have none; processes
    that exit during the scan are skipped)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        argv = pid_cmdline(int(entry.name))
        if argv:
            yield int(entry.name), argv
