"""`banger vm run --name sandbox` lands in a real interactive shell (a TTY), and leaving it
leaves the VM running."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

from tests.e2e.conftest import BANGER, BangerEnv


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            got = seen.decode(errors="replace")
            raise AssertionError(f"timed out waiting for {needle!r}; got:\n{got}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_vm_run_opens_an_interactive_shell_and_keeps_the_vm(banger: BangerEnv) -> None:
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        banger.netns.exec_argv([*BANGER, "vm", "run", "--name", "sandbox"]),
        stdin=terminal, stdout=terminal, stderr=terminal, env=banger.env, close_fds=True,
        start_new_session=True,
    )
    os.close(terminal)
    try:
        banner = _read_until(controller, b"root@sandbox:", timeout=600)
        assert b"spec:" in banner
        os.write(controller, b"tty; echo $((6*7)) > /root/tty-was-here; exit\r")
        rest = _read_until(controller, b"logout", timeout=60)
        assert b"/dev/pts/" in rest
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(controller)
    assert banger.json("vm", "show", "sandbox")["state"] == "running"
    assert banger.run("vm", "ssh", "sandbox", "--", "cat", "/root/tty-was-here").stdout == "42\n"
    banger.run("vm", "delete", "--force", "sandbox")
