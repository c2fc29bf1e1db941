"""The client side of `/v1/vms/{name}/processes`: guest processes the daemon holds, which run
on when the client goes away (a mixin of `Client`)."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: see banger.core.xdg
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from banger.client.transport import Response
    from banger.core import guestapi

    OnOutput = Callable[[bytes], None]


class GuestProcesses:
    if TYPE_CHECKING:
        def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                    *, timeout: float | None = 60.0) -> Any: ...

        def _open(self, method: str, path: str, body: dict[str, Any] | None,
                  timeout: float | None, raw: bytes | None = None) -> Response: ...

    def start_process(self, name: str, request: guestapi.StartProcess) -> guestapi.ProcessInfo:
        """Start a process in the running VM `name`; the daemon holds it."""
        data = self.request("POST", _path(name), request.body(), timeout=None)
        return _info(data["process"])

    def list_processes(self, name: str) -> list[guestapi.ProcessInfo]:
        """The VM's running processes, and ended ones nobody has attached to since."""
        data = self.request("GET", _path(name))
        return [_info(item) for item in data["processes"]]

    def attach_process(
        self, name: str, pid: int,
        on_stdout: OnOutput = lambda _: None, on_stderr: OnOutput = lambda _: None,
        on_dropped: Callable[[int], None] = lambda _: None,
    ) -> guestapi.ExecResult:
        """Hand the process's output to `on_stdout`/`on_stderr` (first what the daemon kept
        since the last attach; `on_dropped` gets how many bytes it had to drop) until it
        ends; its exit status. Leaving early (an exception in a callback, Ctrl-C) only
        detaches: the process runs on."""
        from banger.client.guestexec import read_output
        from banger.core import guestapi

        response = self._open("GET", f"{_path(name, pid)}/output", None, None)
        result = read_output(response, on_stdout, on_stderr, on_dropped, "output")
        return guestapi.ExecResult(**result)

    def start_attached(
        self, name: str, body: dict[str, Any], on_started: Callable[[int], None],
        on_stdout: OnOutput = lambda _: None, on_stderr: OnOutput = lambda _: None,
        on_dropped: Callable[[int], None] = lambda _: None,
    ) -> dict[str, Any]:
        """start_process and attach_process in one request, a round trip less: `body` is a
        StartProcess's `body()` (or those keys built by hand, as `banger vm exec` does to
        keep the dataclasses off its start-up); `on_started` gets the guest pid before any
        output. The result as {"exit_code", "signal", "timed_out"}."""
        from banger.client.guestexec import read_output

        response = self._open("POST", f"{_path(name)}?attach=1", body, None)
        return read_output(response, on_stdout, on_stderr, on_dropped, "output", on_started)

    def send_stdin(self, name: str, pid: int, data: bytes) -> None:
        """Write `data` to the process's stdin (it must have been started with stdin=True);
        waits while the process has not read what was sent before."""
        self._stdin(name, pid, data, close=False)

    def close_stdin(self, name: str, pid: int) -> None:
        """End the process's stdin (on a PTY: its EOF character, ^D)."""
        self._stdin(name, pid, b"", close=True)

    def signal_process(self, name: str, pid: int, signal: int) -> None:
        """Send `signal` (a number) to the process's process group."""
        self.request("POST", f"{_path(name, pid)}/signal", {"signal": signal})

    def resize_process(self, name: str, pid: int, cols: int, rows: int) -> None:
        """Set the size of the process's PTY."""
        self.request("POST", f"{_path(name, pid)}/resize", {"cols": cols, "rows": rows})

    def _stdin(self, name: str, pid: int, data: bytes, close: bool) -> None:
        import base64

        body = {"data": base64.b64encode(data).decode(), "close": close}
        self.request("POST", f"{_path(name, pid)}/stdin", body, timeout=None)


def _path(name: str, pid: int | None = None) -> str:
    from banger.client import _q

    path = f"/v1/vms/{_q(name)}/processes"
    return path if pid is None else f"{path}/{int(pid)}"


def _info(data: dict[str, Any]) -> guestapi.ProcessInfo:
    from banger.core import guestapi

    return guestapi.ProcessInfo.from_dict(data)
