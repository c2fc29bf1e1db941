"""Reaching a remote user's bangerd through the system `ssh`: no port of banger's own is
open on the remote host, and nothing but OpenSSH is needed on this side.

Each request runs `banger daemon stdio` on the remote host (it starts that user's bangerd if
needed and relays stdin/stdout to its socket) over the shared ssh connection
(banger.client.remote), with one end of a socket pair as ssh's stdin and stdout: the HTTP
on the other end is the same as over the local Unix socket."""

from __future__ import annotations

import socket
import subprocess

from banger.client.remote import shared_ssh
from banger.client.transport import (
    HTTPResponse,
    Response,
    Transport,
    request_bytes,
    send_chunked,
)
from banger.core.errors import DaemonUnavailable, MissingTool

TYPE_CHECKING = False  # not typing's: see banger.core.xdg
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import IO

    from banger.core.remote import RemoteHost

# `banger daemon stdio --no-start` when the daemon is not running (EX_TEMPFAIL).
NOT_RUNNING_EXIT = 75
_COMMAND_NOT_FOUND = 127
_SSH_FAILED = 255


class SSHTransport(Transport):
    def __init__(
        self, remote: RemoteHost, env: Mapping[str, str], *, start: bool = True,
        remote_command: str = "banger",
    ) -> None:
        self.remote = remote
        self._env = env
        self._start = start
        self._remote_command = remote_command

    def argv(self) -> list[str]:
        stdio = [self._remote_command, "daemon", "stdio"]
        if not self._start:
            stdio.append("--no-start")
        # -T: no terminal, the session carries bytes; the remote command is one string, as
        # ssh hands it to the remote user's shell.
        return [*shared_ssh(self._env, self.remote), "-T", *self.remote.ssh_args(),
                " ".join(stdio)]

    def send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str],
        timeout: float | None,
    ) -> Response:
        request = request_bytes(method, path, body, headers)
        return self._exchange(lambda sock: sock.sendall(request), timeout)

    def send_stream(
        self, method: str, path: str, body: Iterable[bytes], headers: dict[str, str],
        timeout: float | None,
    ) -> Response:
        return self._exchange(
            lambda sock: send_chunked(sock, method, path, body, headers), timeout
        )

    def _exchange(self, write: Callable[[socket.socket], None], timeout: float | None,
                  ) -> Response:
        """Start ssh, `write` the request into it, read the answer."""
        import tempfile

        ours, theirs = socket.socketpair()
        errors = tempfile.TemporaryFile()  # noqa: SIM115 (the response closes it)
        try:
            proc = subprocess.Popen(
                self.argv(), stdin=theirs.fileno(), stdout=theirs.fileno(), stderr=errors,
                close_fds=True, env=dict(self._env),
            )
        except FileNotFoundError:
            for item in (ours, theirs, errors):
                item.close()
            raise MissingTool(
                "ssh not found on this machine",
                hint="install OpenSSH's client (or set BANGER_SSH_COMMAND)",
            ) from None
        theirs.close()
        ours.settimeout(timeout)
        try:
            write(ours)
            return _SSHResponse(ours, proc, errors)
        except (ConnectionResetError, BrokenPipeError):
            ours.close()
            raise self._failure(_reap(proc), errors) from None
        except BaseException:
            ours.close()
            _reap(proc)
            errors.close()
            raise

    def _failure(self, code: int, errors: IO[bytes]) -> Exception:
        """Why no answer came: ssh's own error, a remote host without banger, or (with
        start=False) a daemon that is not running there."""
        errors.seek(0)
        lines = [line for line in errors.read().decode(errors="replace").splitlines()
                 if line.strip()]
        errors.close()
        last = lines[-1].strip() if lines else f"ssh exited with status {code}"
        where = self.remote.url
        if code == NOT_RUNNING_EXIT:
            return ConnectionRefusedError(f"bangerd is not running on {where}")
        if code == _COMMAND_NOT_FOUND:
            return DaemonUnavailable(
                f"banger is not installed on {where} ({last})",
                hint="install banger there (the daemon side needs its Linux host); it must "
                "be on the PATH of a non-interactive ssh session",
            )
        if code == _SSH_FAILED:
            return DaemonUnavailable(
                f"cannot reach {where} over ssh: {last}",
                hint=f"check that `ssh {self.remote.destination}` works without a prompt "
                "(key, known host); BANGER_SSH_COMMAND can add options",
            )
        return DaemonUnavailable(
            f"bangerd on {where} did not answer: {last}",
            hint=f"see `ssh {self.remote.destination} banger daemon status`",
        )


class _SSHResponse(HTTPResponse):
    """An answer over ssh; closing it also ends the ssh process."""

    def __init__(self, sock: socket.socket, proc: subprocess.Popen[bytes], errors: IO[bytes]):
        self._proc = proc
        self._errors = errors
        try:
            super().__init__(sock)
        except ConnectionResetError:
            sock.close()
            raise
        self._errors.close()

    def close(self) -> None:
        super().close()
        _reap(self._proc)


def _reap(proc: subprocess.Popen[bytes]) -> int:
    """ssh's exit status; it ends by itself once both sides closed the session."""
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
