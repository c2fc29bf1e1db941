"""The daemon's end of a VM's exec channel (core/agentframe.py): one connection per VM,
many processes multiplexed over it.

One task reads the channel and hands each frame to its stream's bounded queue. A consumer
that reads slowly fills its queue and stops that task, so the agent's writes block in turn:
back-pressure all the way to the guest process, no buffer grows with the output. The price
is head-of-line blocking: a stalled consumer stalls the other streams of its VM, which is
the right trade for a daemon that streams to clients over a local socket (per-stream credit
windows would lift it at the cost of a larger agent).

Any error on the channel (end of stream, an oversize or unknown frame) fails every stream
in flight with GuestAgentFailed and ends the session; the next request opens a new one."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from banger.core.agent import agent_stopped
from banger.core.agentframe import (
    HELLO,
    MAX_PAYLOAD,
    MAX_PREAMBLE,
    STDIN_WINDOW,
    ExecHeader,
    ExitStatus,
    Frame,
    FrameDecoder,
    FrameError,
    FrameType,
    after_hello,
    chunks,
    encode,
    kill_payload,
    parse_count,
    parse_exit,
    parse_file_error,
    read_header,
    window_size,
    write_header,
)
from banger.core.errors import (
    BangerError,
    GuestAgentFailed,
    GuestAgentStopped,
    GuestAgentUnavailable,
    GuestFileFailed,
    GuestPathNotFound,
)

StreamOpener = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
# Frames a stream may hold before the reader waits for its consumer.
_QUEUE_FRAMES = 16
_KILL = 9


@dataclass(frozen=True)
class Output:
    """A piece of what the process wrote: `stderr` False for its stdout."""

    data: bytes
    stderr: bool = False


class AgentSession:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 leftover: bytes = b"") -> None:
        self._reader = reader
        self._writer = writer
        self._streams: dict[int, asyncio.Queue[Frame | None]] = {}
        self._ids = itertools.count(1)
        self._failure: GuestAgentFailed | None = None
        # Why the agent stopped, when it said so on the channel (its unit's stop script).
        self.stopped: str | None = None
        self._decoder = FrameDecoder()
        self._task = asyncio.create_task(self._read(leftover))

    @classmethod
    async def connect(cls, open_stream: StreamOpener, timeout: float) -> AgentSession:
        """Open the channel and greet the agent: fails (GuestAgentUnavailable: nothing was
        run) unless it answers HELLO in time."""
        try:
            reader, writer = await asyncio.wait_for(open_stream(), timeout)
        except TimeoutError as exc:
            raise GuestAgentUnavailable(
                f"cannot reach the guest agent within {timeout:.0f}s"
            ) from exc
        try:
            writer.write(HELLO)
            await writer.drain()
            leftover = await asyncio.wait_for(_hello_from(reader), timeout)
        except TimeoutError as exc:
            writer.close()
            raise GuestAgentUnavailable(
                f"the guest agent did not answer within {timeout:.0f}s"
            ) from exc
        except BaseException as exc:  # cancelled too: the channel takes one host at a time
            writer.close()
            if isinstance(exc, ConnectionError):
                raise GuestAgentUnavailable(f"the guest agent's channel failed: {exc}") from exc
            raise
        return cls(reader, writer, leftover)

    @property
    def alive(self) -> bool:
        return self._failure is None

    async def exec(self, header: ExecHeader, stdin: bytes = b"") -> Execution:
        """Start a process; its stdin is `stdin`, then closed."""
        self._check()
        stream = next(self._ids)
        self._streams[stream] = asyncio.Queue(_QUEUE_FRAMES)
        try:
            await self._send(encode(Frame(stream, FrameType.OPEN_EXEC, header.payload())))
            for frame in chunks(stream, FrameType.STDIN, stdin):
                await self._send(frame)
            await self._send(encode(Frame(stream, FrameType.STDIN_CLOSE)))
        except BaseException:
            self._streams.pop(stream, None)
            raise
        return Execution(self, stream)

    async def start(self, header: ExecHeader, stdin: bool) -> Execution:
        """Start a process and wait for its guest pid; its stdin stays open for `write_stdin`
        if `stdin`, else it is closed at once."""
        stream = await self._start(FrameType.OPEN_EXEC, header.payload())
        execution = Execution(self, stream)
        try:
            if not stdin:
                await self._send(encode(Frame(stream, FrameType.STDIN_CLOSE)))
            frame = await self._next(stream)
            if frame.type is FrameType.ERROR:
                raise _exec_error(frame.payload)
            if frame.type is not FrameType.STARTED:
                raise GuestAgentFailed(f"the guest agent answered a start with {frame.type.name}")
            execution.pid = _count(frame.payload, "STARTED")
        except BaseException:
            self._end(stream)
            raise
        return execution

    async def read_file(self, path: str) -> AsyncIterator[bytes]:
        """The file's content, in pieces as the agent reads them."""
        stream = await self._start(FrameType.READ_FILE, read_header(path))
        try:
            while True:
                frame = await self._next(stream)
                if frame.type is FrameType.DATA:
                    yield frame.payload
                elif frame.type is FrameType.DONE:
                    return
                elif frame.type is FrameType.ERROR:
                    raise _file_error(frame.payload)
        finally:
            self._end(stream)

    async def write_file(
        self, path: str, content: AsyncIterator[bytes], mode: int, owner: str | None = None,
    ) -> None:
        """Write `content` to a temporary file the agent renames over `path` at the end
        (owned by `owner`, USER[:GROUP] in the guest; root by default)."""
        stream = await self._start(FrameType.WRITE_FILE, write_header(path, mode, owner))
        try:
            async for piece in content:
                for encoded in chunks(stream, FrameType.DATA, piece):
                    self._raise_early_error(stream)
                    await self._send(encoded)
            await self._send(encode(Frame(stream, FrameType.DATA_END)))
            while True:
                frame = await self._next(stream)
                if frame.type is FrameType.DONE:
                    return
                if frame.type is FrameType.ERROR:
                    raise _file_error(frame.payload)
        finally:
            self._end(stream)

    async def _start(self, kind: FrameType, header: bytes) -> int:
        self._check()
        stream = next(self._ids)
        self._streams[stream] = asyncio.Queue(_QUEUE_FRAMES)
        try:
            await self._send(encode(Frame(stream, kind, header)))
        except BaseException:
            self._streams.pop(stream, None)
            raise
        return stream

    def _raise_early_error(self, stream: int) -> None:
        """A write the agent refused at once (no such directory) ends before its data."""
        queue = self._streams.get(stream)
        if queue is not None and not queue.empty():
            frame = queue.get_nowait()
            if frame is None:
                self._check()
            elif frame.type is FrameType.ERROR:
                raise _file_error(frame.payload)

    async def close(self) -> None:
        self._fail(GuestAgentFailed("the channel to the guest agent was closed"))
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._writer.close()

    async def _next(self, stream: int) -> Frame:
        queue = self._streams.get(stream)
        if queue is None:
            raise self._failure or GuestAgentFailed("the stream has ended")
        frame = await queue.get()
        if frame is None:
            raise self._failure or GuestAgentFailed("the channel to the guest agent failed")
        return frame

    def _end(self, stream: int) -> None:
        self._streams.pop(stream, None)

    async def _send(self, data: bytes) -> None:
        self._check()
        try:
            self._writer.write(data)
            await self._writer.drain()
        except ConnectionError as exc:
            self._fail(GuestAgentFailed(f"the guest agent's channel closed: {exc}"))
            self._check()

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _fail(self, error: GuestAgentFailed) -> None:
        if self._failure is not None:
            return
        self._failure = error
        for queue in self._streams.values():
            while not queue.empty():  # what is left of a failed stream does not matter
                queue.get_nowait()
            queue.put_nowait(None)

    async def _read(self, leftover: bytes) -> None:
        data = leftover
        try:
            while True:
                for frame in self._decoder.feed(data):
                    queue = self._streams.get(frame.stream)
                    if queue is not None:  # else a late frame of a stream given up on
                        await queue.put(frame)
                data = await self._reader.read(MAX_PAYLOAD)
                if not data:
                    self._fail(GuestAgentFailed("the guest agent closed the channel"))
                    return
        except FrameError as exc:
            # An agent that died mid-session: its unit's stop script writes why, a line
            # where the next frame would be. The requests in flight fail (they may have
            # run), and the next one is told at once (GuestExec).
            stopped = agent_stopped(data)
            if stopped is not None:
                self.stopped = f"the guest agent {stopped}"
                self._fail(GuestAgentFailed(
                    self.stopped, hint="`banger vm restart NAME` starts it again; "
                    "`banger vm logs NAME` may say why it stopped",
                ))
            else:
                self._fail(GuestAgentFailed(f"the guest agent sent garbage: {exc}"))
        except ConnectionError as exc:
            self._fail(GuestAgentFailed(f"the guest agent's channel failed: {exc}"))
        finally:
            if self._failure is not None:
                self._writer.close()


class Execution:
    """A process running in the guest: iterate for its output, then its exit status."""

    def __init__(self, session: AgentSession, stream: int) -> None:
        self._session = session
        self.stream = stream
        self.pid: int | None = None
        self.status: ExitStatus | None = None
        self._ended = False
        self._stdin_sent = 0
        self._stdin_taken = 0
        self._stdin_progress = asyncio.Event()

    async def output(self) -> AsyncIterator[Output]:
        """Its stdout and stderr as they come; `status` is set once this ends."""
        try:
            while True:
                frame = await self._session._next(self.stream)
                if frame.type is FrameType.STDOUT:
                    yield Output(frame.payload)
                elif frame.type is FrameType.STDIN_ACK:
                    self._stdin_taken = _count(frame.payload, "STDIN_ACK")
                    self._stdin_progress.set()
                elif frame.type is FrameType.STARTED:
                    self.pid = _count(frame.payload, "STARTED")
                elif frame.type is FrameType.STDERR:
                    yield Output(frame.payload, stderr=True)
                elif frame.type is FrameType.EXIT:
                    try:
                        self.status = parse_exit(frame.payload)
                    except FrameError as exc:
                        raise GuestAgentFailed(f"the guest agent sent garbage: {exc}") from exc
                    return
                elif frame.type is FrameType.ERROR:
                    raise _exec_error(frame.payload)
        finally:
            try:
                if self.status is None:
                    await self.kill(_KILL)  # nobody reads it any more
            finally:
                self._ended = True
                self._stdin_progress.set()
                self._session._end(self.stream)

    async def kill(self, signal: int) -> None:
        await self._control(FrameType.KILL, kill_payload(signal))

    async def resize(self, cols: int, rows: int) -> None:
        await self._control(FrameType.RESIZE, window_size(cols, rows))

    async def write_stdin(self, data: bytes) -> None:
        """Send `data` to the process's stdin, waiting while the agent holds STDIN_WINDOW
        bytes it has not written yet (someone must be reading `output`, which takes the
        agent's acknowledgements). Dropped once the process has ended."""
        for at in range(0, len(data), MAX_PAYLOAD):
            piece = data[at:at + MAX_PAYLOAD]
            while not self._ended and self._stdin_sent - self._stdin_taken >= STDIN_WINDOW:
                self._stdin_progress.clear()
                await self._stdin_progress.wait()
            if self._ended:
                return
            self._stdin_sent += len(piece)
            await self._control(FrameType.STDIN, piece)

    async def close_stdin(self) -> None:
        await self._control(FrameType.STDIN_CLOSE, b"")

    async def _control(self, kind: FrameType, payload: bytes) -> None:
        if self._session.alive and not self._ended:
            await self._session._send(encode(Frame(self.stream, kind, payload)))


def _count(payload: bytes, what: str) -> int:
    try:
        return parse_count(payload, what)
    except FrameError as exc:
        raise GuestAgentFailed(f"the guest agent sent garbage: {exc}") from exc


def _exec_error(payload: bytes) -> GuestAgentFailed:
    message = payload.decode(errors="replace")
    return GuestAgentFailed(f"cannot run the command: {message}",
                            hint="check the user and the command")


def _file_error(payload: bytes) -> BangerError:
    errno_, message = parse_file_error(payload)
    if errno_ == errno.ENOENT:
        return GuestPathNotFound(message)
    return GuestFileFailed(message)


async def _hello_from(reader: asyncio.StreamReader) -> bytes:
    """Skip to the agent's HELLO; returns what followed it."""
    preamble = b""
    while True:
        data = await reader.read(MAX_PAYLOAD)
        if not data:
            raise GuestAgentUnavailable(
                "the guest agent closed the channel before it said hello"
            )
        preamble += data
        rest = after_hello(preamble)
        if rest is not None:
            return rest
        stopped = agent_stopped(preamble)
        if stopped is not None:
            raise GuestAgentStopped(f"the guest agent {stopped}")
        if len(preamble) > MAX_PREAMBLE:
            raise GuestAgentUnavailable("the guest agent does not speak banger-agent/1")
