"""`banger vm exec`'s process: started and held by the daemon, attached to until it ends,
with this terminal's stdin streamed in, Ctrl-C forwarded as SIGINT, and with -t a PTY in
the guest that this terminal, put in raw mode, drives (its size follows SIGWINCH).

Plain dicts, not core/guestapi's dataclasses: importing dataclasses (and building them)
costs more than the whole round trip to the guest, and this is the path a script calls in
a loop."""

from __future__ import annotations

import contextlib
import os
import signal
import sys

from banger.core.errors import BangerError

TYPE_CHECKING = False  # not typing's: see core/xdg.py
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

# How much of the stdin one request carries (the daemon splits it into frames).
STDIN_PIECE = 1 << 20
_KILL = 9


class _Started:
    """The guest pid, once the daemon has named it; a Ctrl-C that came before waits here."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.interrupted = False


def run_process(client: Any, name: str, body: dict[str, Any], forward_stdin: bool,
                ) -> dict[str, Any]:
    """Run the process `body` describes (a StartProcess body) in VM `name` to its end, this
    process's stdio wired to it; its result {"exit_code", "signal", "timed_out"}."""
    started = _Started()

    def on_started(pid: int) -> None:
        started.pid = pid
        if started.interrupted:
            with contextlib.suppress(BangerError, OSError):
                client.signal_process(name, pid, signal.SIGINT)
        if forward_stdin:
            import threading

            threading.Thread(target=_pump_stdin, args=(client, name, pid), daemon=True).start()

    ended = False
    try:
        with _raw_terminal(body.get("pty") is not None), \
                _forwarded_signals(client, name, started):
            result: dict[str, Any] = client.start_attached(
                name, body, on_started, _writer(sys.stdout), _writer(sys.stderr),
                lambda count: _warn(f"{count} bytes of output were dropped"),
            )
        ended = True
        return result
    finally:
        if not ended and started.pid is not None:
            # This command failed, not the process: it does not outlive us.
            with contextlib.suppress(BangerError, OSError):
                client.signal_process(name, started.pid, _KILL)


def terminal_size() -> dict[str, int]:
    """The size of our terminal (on stdout, else stdin or stderr), else 80x24: {cols, rows}."""
    for fd in (1, 0, 2):
        with contextlib.suppress(OSError):
            size = os.get_terminal_size(fd)
            return {"cols": size.columns or 80, "rows": size.lines or 24}
    return {"cols": 80, "rows": 24}


def _pump_stdin(client: Any, name: str, pid: int) -> None:
    """Our stdin to the process's, piece by piece as it comes, then its end."""
    try:
        # os.read, not the buffered sys.stdin: at exit, Python aborts if a daemon thread
        # still holds a buffered stream's lock.
        fd = sys.stdin.fileno()
        while data := os.read(fd, STDIN_PIECE):  # what there is, at once
            client.send_stdin(name, pid, data)
        client.close_stdin(name, pid)
    except (BangerError, OSError, ValueError):
        return  # the process ended, or stopped reading: what is left has nowhere to go


@contextlib.contextmanager
def _raw_terminal(pty: bool) -> Iterator[None]:
    """With a PTY in the guest, our terminal passes every key through (Ctrl-C included):
    the guest's terminal does the echo, the line editing and the signals."""
    if not pty or sys.stdin is None or not sys.stdin.isatty():
        yield
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)  # not the default TCSAFLUSH: keep what was typed ahead
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def _forwarded_signals(client: Any, name: str, started: _Started) -> Iterator[None]:
    def interrupt(*_: object) -> None:
        if started.pid is None:
            started.interrupted = True  # sent once the daemon names the process
            return
        with contextlib.suppress(BangerError, OSError):
            client.signal_process(name, started.pid, signal.SIGINT)

    def resized(*_: object) -> None:
        if started.pid is None:
            return  # it starts with the size we had then; the next change catches up
        size = terminal_size()
        with contextlib.suppress(BangerError, OSError):
            client.resize_process(name, started.pid, size["cols"], size["rows"])

    handlers: list[tuple[int, Callable[..., None]]] = [(signal.SIGINT, interrupt)]
    if sys.stdout.isatty():
        handlers.append((signal.SIGWINCH, resized))
    saved = [(number, signal.signal(number, handler)) for number, handler in handlers]
    try:
        yield
    finally:
        for number, previous in saved:
            signal.signal(number, previous)


def _writer(stream: Any) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        stream.buffer.write(data)
        stream.buffer.flush()
    return write


def _warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")
    sys.stderr.flush()
