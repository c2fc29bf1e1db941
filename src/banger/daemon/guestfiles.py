"""Files in running guests beyond read and write: list, stat, mkdir, remove, rename, and
directories as tar streams, over banger-agent's channel (host/agentfiles.py).

Directories travel as tar made and unpacked by the guest's own `tar` (GNU tar in Debian
images, busybox's in most others): the agent stays small, and tar already knows every
file type, hard link and long name. Out of the guest it runs as an exec (its stdout is the
stream, with the exec channel's back-pressure); into the guest the agent pipes the upload
into `tar -x` frame by frame (UNTAR), as it writes a file: one request, one answer, no
process for the daemon to hold."""

from __future__ import annotations

from collections.abc import AsyncIterator

from banger.core import guestapi
from banger.core.agentfiles import MAX_DEPTH, Entry
from banger.core.agentframe import ExecHeader
from banger.core.errors import GuestFileFailed, InvalidInput
from banger.daemon.guestexec import GuestExec
from banger.host.agentfiles import AgentFiles

# Enough of tar's stderr to say why it failed.
_TAR_ERRORS = 4096
_NO_TAR_HINT = "install tar in the image (e.g. apt-get install tar)"


class GuestFiles:
    def __init__(self, guest_exec: GuestExec) -> None:
        self._exec = guest_exec

    async def entries(
        self, name: str, path: str, depth: int
    ) -> AsyncIterator[list[guestapi.FileEntry]]:
        """What is below directory `path`, `depth` levels down, in batches as they come."""
        if not 1 <= depth <= MAX_DEPTH:
            raise InvalidInput(f"depth must be 1 to {MAX_DEPTH}")
        path = _clean(path)
        files = await self._files(name, path)
        async for batch in files.entries(path, depth):
            yield [file_entry(entry) for entry in batch]

    async def stat(self, name: str, path: str) -> guestapi.FileEntry:
        path = _clean(path)
        return file_entry(await (await self._files(name, path)).stat(path))

    async def mkdir(self, name: str, path: str, mode: int) -> guestapi.FileEntry:
        if not 0 <= mode <= 0o7777:
            raise InvalidInput(f"mode {mode} is not a file mode (e.g. 493 for 0o755)")
        path = _clean(path)
        return file_entry(await (await self._files(name, path)).mkdir(path, mode))

    async def remove(self, name: str, path: str, recursive: bool) -> None:
        path = _clean(path)
        if path == "/":
            raise InvalidInput("refusing to remove the guest's /")
        await (await self._files(name, path)).remove(path, recursive)

    async def rename(self, name: str, source: str, destination: str) -> guestapi.FileEntry:
        source, destination = _clean(source), _clean(destination)
        await self._files(name, source)
        files = await self._files(name, destination)
        return file_entry(await files.rename(source, destination))

    async def download_tar(self, name: str, directory: str) -> AsyncIterator[bytes]:
        """The contents of guest directory `directory` as a tar stream (entries `./...`)."""
        directory = _clean(directory)
        files = await self._files(name, directory)
        if (await files.stat(directory)).type not in ("dir", "symlink"):
            raise GuestFileFailed(f"cannot pack {directory}: Not a directory")
        session = await self._exec._running(name, directory)
        execution = await session.exec(
            ExecHeader(argv=["tar", "-c", "-f", "-", "-C", directory, "."])
        )
        errors = b""
        async for piece in execution.output():
            if not piece.stderr:
                yield piece.data
            elif len(errors) < _TAR_ERRORS:
                errors += piece.data[:_TAR_ERRORS - len(errors)]
        status = execution.status
        if status is None or status.exit_code != 0:
            if status is not None and status.exit_code == 127:
                raise GuestFileFailed(f"cannot pack {directory}: the guest has no tar",
                                      hint=_NO_TAR_HINT)
            why = errors.decode(errors="replace").strip() or f"tar ended with {status}"
            raise GuestFileFailed(f"cannot pack {directory}: {why}")

    async def upload_tar(
        self, name: str, directory: str, content: AsyncIterator[bytes],
    ) -> None:
        """Unpack the tar stream `content` into guest directory `directory` (made if
        missing); files are owned by root, modes kept."""
        directory = _clean(directory)
        files = await self._files(name, directory)
        try:
            await files.untar(directory, content)
        except GuestFileFailed as exc:
            if "the guest has no tar" in exc.message:
                raise GuestFileFailed(exc.message, hint=_NO_TAR_HINT) from None
            raise

    async def _files(self, name: str, path: str) -> AgentFiles:
        # GuestExec holds the VM's one session (and checks the VM runs and the path).
        return AgentFiles(await self._exec._running(name, path))


def file_entry(entry: Entry) -> guestapi.FileEntry:
    return guestapi.FileEntry(
        name=entry.name, path=entry.path, type=entry.type, size=entry.size, mode=entry.mode,
        uid=entry.uid, gid=entry.gid, owner=entry.owner, group=entry.group, mtime=entry.mtime,
        target=entry.target,
    )


def _clean(path: str) -> str:
    """`path` without trailing slashes (the agent names entries below it from it)."""
    return (path.rstrip("/") or "/") if path.startswith("/") else path
