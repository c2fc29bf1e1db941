"""Guest files for envd's Filesystem service and its `/files` endpoint: whole files through
the agent's file channel; listings, stat, mkdir, move and remove as small commands run
through its exec channel (`find -printf`, `mkdir`, `mv`, `rm`), as the asking user."""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import AsyncIterator

from banger.core import guestapi
from banger.core.connect import RPCError
from banger.core.e2bfiles import MISSING_MARK, Entry, listing_command, parse_listing
from banger.core.e2bwire import DEFAULT_HOME, DEFAULT_USER
from banger.core.errors import GuestPathNotFound
from banger.daemon.guestexec import GuestExec
from banger.host.agentsession import Output

# A recursive watch looks this many levels down.
RECURSIVE_DEPTH = 32


def home_of(user: str) -> str:
    if user == "root":
        return "/root"
    return DEFAULT_HOME if user == DEFAULT_USER else f"/home/{user}"


def resolve(path: str, user: str) -> str:
    """envd's rule: a relative path is relative to the user's home."""
    if not path:
        raise RPCError("invalid_argument", "path is required")
    if "\0" in path:
        raise RPCError("invalid_argument", "path holds a NUL byte")
    if path == "~" or path.startswith("~/"):
        path = home_of(user) + path[1:]
    return posixpath.normpath(posixpath.join(home_of(user), path))


class GuestFiles:
    def __init__(self, guest: GuestExec) -> None:
        self._guest = guest

    async def entries(self, vm: str, path: str, depth: int, user: str) -> list[Entry]:
        """`path`'s entries `depth` levels down (0: `path` itself)."""
        code, out, err = await self._shell(vm, listing_command(path, depth), user)
        if code == 2 and MISSING_MARK.encode() in err:
            raise RPCError("not_found", f"path '{path}' does not exist")
        if code != 0:
            raise _failed(path, err)
        return parse_listing(out)

    async def stat(self, vm: str, path: str, user: str) -> Entry:
        return (await self.entries(vm, path, 0, user))[0]

    async def make_dir(self, vm: str, path: str, user: str) -> Entry:
        quoted = shlex.quote(path)
        code, _, err = await self._shell(
            vm, f"if [ -e {quoted} ]; then exit 17; fi; mkdir -p {quoted}", user)
        if code == 17:
            raise RPCError("already_exists", f"path '{path}' already exists")
        if code != 0:
            raise _failed(path, err)
        return await self.stat(vm, path, user)

    async def move(self, vm: str, source: str, destination: str, user: str) -> Entry:
        code, _, err = await self._shell(
            vm, f"[ -e {shlex.quote(source)} ] || exit 2; "
                f"mv -T {shlex.quote(source)} {shlex.quote(destination)}", user)
        if code == 2:
            raise RPCError("not_found", f"path '{source}' does not exist")
        if code != 0:
            raise _failed(source, err)
        return await self.stat(vm, destination, user)

    async def remove(self, vm: str, path: str, user: str) -> None:
        quoted = shlex.quote(path)
        code, _, err = await self._shell(
            vm, f"[ -e {quoted} ] || [ -L {quoted} ] || exit 2; rm -rf -- {quoted}", user)
        if code == 2:
            raise RPCError("not_found", f"path '{path}' does not exist")
        if code != 0:
            raise _failed(path, err)

    def read(self, vm: str, path: str) -> AsyncIterator[bytes]:
        return self._guest.read_file(vm, path)

    async def write(self, vm: str, path: str, data: bytes, user: str) -> Entry:
        """Write `data` to `path` (parents made as needed), owned by `user`."""

        async def content() -> AsyncIterator[bytes]:
            yield data

        try:
            await self._guest.write_file(vm, path, content(), 0o644, owner=user)
        except GuestPathNotFound:
            await self._shell(vm, f"mkdir -p {shlex.quote(posixpath.dirname(path))}", user)
            await self._guest.write_file(vm, path, content(), 0o644, owner=user)
        return Entry("f", len(data), 0o644, user, user, 0.0, path, "")

    async def _shell(self, vm: str, command: str, user: str) -> tuple[int, bytes, bytes]:
        out, err = bytearray(), bytearray()

        async def keep(piece: Output) -> None:
            (err if piece.stderr else out).extend(piece.data)

        result = await self._guest.run(
            vm, guestapi.ExecVM(argv=["/bin/sh", "-c", command], user=user), keep)
        code = result.exit_code if result.exit_code is not None else 128
        return code, bytes(out), bytes(err)


def _failed(path: str, err: bytes) -> RPCError:
    message = err.decode(errors="replace").strip() or "failed"
    if "Permission denied" in message:
        return RPCError("permission_denied", f"{path}: {message}")
    return RPCError("unknown", f"{path}: {message}")
