"""The daemon's end of banger-agent's file operations beyond read and write
(core/agentfiles.py), over a VM's AgentSession: the frames of one request on one stream."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from banger.core.agentfiles import (
    Entry,
    list_header,
    mkdir_header,
    parse_entries,
    remove_header,
    rename_header,
    untar_header,
)
from banger.core.agentframe import Frame, FrameError, FrameType, chunks, encode, kill_payload
from banger.core.errors import GuestAgentFailed
from banger.host.agentsession import AgentSession, _file_error


class AgentFiles:
    def __init__(self, session: AgentSession) -> None:
        self._session = session

    async def entries(self, path: str, depth: int) -> AsyncIterator[list[Entry]]:
        """What is below directory `path`, `depth` levels down, a frame's worth at a time
        (depth 0: `path` itself)."""
        async for frame in self._answer(FrameType.LIST, list_header(path, depth)):
            yield _entries(frame)

    async def stat(self, path: str) -> Entry:
        return await self._one_entry(FrameType.LIST, list_header(path, 0))

    async def mkdir(self, path: str, mode: int) -> Entry:
        return await self._one_entry(FrameType.MKDIR, mkdir_header(path, mode))

    async def rename(self, source: str, destination: str) -> Entry:
        return await self._one_entry(FrameType.RENAME, rename_header(source, destination))

    async def remove(self, path: str, recursive: bool) -> None:
        async for frame in self._answer(FrameType.REMOVE, remove_header(path, recursive)):
            raise GuestAgentFailed(f"the guest agent sent an unexpected {frame.type.name} frame")

    async def untar(self, directory: str, content: AsyncIterator[bytes]) -> None:
        """Unpack the tar stream `content` into `directory` (made if missing)."""
        session = self._session
        stream = await session._start(FrameType.UNTAR, untar_header(directory))
        sent = False
        try:
            async for piece in content:
                for encoded in chunks(stream, FrameType.DATA, piece):
                    session._raise_early_error(stream)
                    await session._send(encoded)
            await session._send(encode(Frame(stream, FrameType.DATA_END)))
            sent = True
            while True:
                frame = await session._next(stream)
                if frame.type is FrameType.DONE:
                    return
                if frame.type is FrameType.ERROR:
                    raise _file_error(frame.payload)
        except BaseException:
            # The upload broke off (its client went away): the agent kills its tar.
            if not sent and session.alive:
                with contextlib.suppress(GuestAgentFailed):
                    await session._send(encode(Frame(stream, FrameType.KILL, kill_payload(9))))
            raise
        finally:
            session._end(stream)

    async def _one_entry(self, kind: FrameType, header: bytes) -> Entry:
        found: list[Entry] = []
        async for frame in self._answer(kind, header):
            found += _entries(frame)
        if len(found) != 1:
            raise GuestAgentFailed(f"the guest agent answered {len(found)} entries, not one")
        return found[0]

    async def _answer(self, kind: FrameType, header: bytes) -> AsyncIterator[Frame]:
        """The frames answering one request, up to its DONE; its ERROR raised."""
        session = self._session
        stream = await session._start(kind, header)
        try:
            while True:
                frame = await session._next(stream)
                if frame.type is FrameType.DONE:
                    return
                if frame.type is FrameType.ERROR:
                    raise _file_error(frame.payload)
                yield frame
        finally:
            session._end(stream)


def _entries(frame: Frame) -> list[Entry]:
    if frame.type is not FrameType.ENTRIES:
        raise GuestAgentFailed(f"the guest agent sent an unexpected {frame.type.name} frame")
    try:
        return parse_entries(frame.payload)
    except FrameError as exc:
        raise GuestAgentFailed(f"the guest agent sent garbage: {exc}") from exc
