"""The host session of the exec channel, against the real banger-agent (run on this host over
a socketpair instead of its virtio-serial port) and against hostile stand-ins."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from banger.core.agentframe import HELLO, MAX_PAYLOAD, STDIN_WINDOW, ExecHeader, ExitStatus
from banger.core.errors import (
    GuestAgentFailed,
    GuestAgentUnavailable,
    GuestFileFailed,
    GuestPathNotFound,
)
from banger.host.agentsession import AgentSession, Execution
from tests.support.perlagent import perl_agent


@pytest.fixture
async def session(tmp_path: object) -> AsyncIterator[AgentSession]:
    with perl_agent() as opener:
        opened = await AgentSession.connect(opener, timeout=10)
        try:
            yield opened
        finally:
            await opened.close()


async def run(session: AgentSession, header: ExecHeader, stdin: bytes = b"",
              ) -> tuple[bytes, bytes, ExitStatus | None]:
    execution = await session.exec(header, stdin)
    out, err = bytearray(), bytearray()
    async for piece in execution.output():
        (err if piece.stderr else out).extend(piece.data)
    return bytes(out), bytes(err), execution.status


async def test_exec_separates_stdout_and_stderr_and_returns_the_code(
    session: AgentSession,
) -> None:
    out, err, status = await run(session, ExecHeader(command="echo out; echo err >&2; exit 3"))
    assert (out, err, status) == (b"out\n", b"err\n", ExitStatus(exit_code=3))


async def test_a_missing_command_is_127_with_a_message(session: AgentSession) -> None:
    _, err, status = await run(session, ExecHeader(argv=["no-such-command-here"]))
    assert status == ExitStatus(exit_code=127)
    assert b"no-such-command-here: command not found" in err


async def test_env_cwd_and_stdin(session: AgentSession) -> None:
    out, _, status = await run(
        session, ExecHeader(command='echo "$GREETING"; pwd; cat', env={"GREETING": "hi there"},
                            cwd="/tmp"), stdin=b"from stdin",
    )
    assert status == ExitStatus(exit_code=0)
    assert out == b"hi there\n/tmp\nfrom stdin"


async def test_large_output_arrives_intact(session: AgentSession) -> None:
    size = 8 * 1024 * 1024
    out, _, status = await run(session, ExecHeader(argv=["head", "-c", str(size), "/dev/zero"]))
    assert status == ExitStatus(exit_code=0)
    assert len(out) == size and out.count(0) == size


async def test_processes_run_at_once_without_mixing_output(session: AgentSession) -> None:
    results = await asyncio.gather(*(
        run(session, ExecHeader(command=f"for i in 1 2 3 4 5; do echo {n}; sleep 0.05; done"))
        for n in range(6)
    ))
    for n, (out, _, status) in enumerate(results):
        assert status == ExitStatus(exit_code=0)
        assert out == f"{n}\n".encode() * 5


async def test_kill_ends_a_process_with_its_signal(session: AgentSession) -> None:
    execution = await session.exec(ExecHeader(argv=["sleep", "60"]))
    await asyncio.sleep(0.2)
    await execution.kill(15)
    async for _ in execution.output():
        pass
    assert execution.status == ExitStatus(signal=15)


async def test_a_bad_user_is_an_error_of_that_stream_only(session: AgentSession) -> None:
    with pytest.raises(GuestAgentFailed, match="no user nobody-here"):
        await run(session, ExecHeader(argv=["true"], user="nobody-here"))
    assert (await run(session, ExecHeader(argv=["true"])))[2] == ExitStatus(exit_code=0)


async def collect(execution: Execution) -> bytes:
    out = bytearray()
    async for piece in execution.output():
        out.extend(piece.data)
    return bytes(out)


async def test_a_started_process_reports_its_pid_and_takes_stdin_in_pieces(
    session: AgentSession,
) -> None:
    execution = await session.start(ExecHeader(command="echo $$; cat"), stdin=True)
    assert execution.pid is not None and execution.pid > 1
    output = asyncio.create_task(collect(execution))
    for piece in (b"one\n", b"two\n"):
        await execution.write_stdin(piece)
        await asyncio.sleep(0.05)
    await execution.close_stdin()
    assert await output == f"{execution.pid}\n".encode() + b"one\ntwo\n"
    assert execution.status == ExitStatus(exit_code=0)


async def test_stdin_larger_than_the_window_waits_for_the_process(
    session: AgentSession,
) -> None:
    data = os.urandom(4 * STDIN_WINDOW + 5)
    execution = await session.start(ExecHeader(command="sleep 0.3; sha256sum"), stdin=True)
    output = asyncio.create_task(collect(execution))
    await execution.write_stdin(data)
    await execution.close_stdin()
    assert (await output).split()[0].decode() == hashlib.sha256(data).hexdigest()


async def test_stdin_of_a_process_that_does_not_read_it_is_dropped_without_blocking(
    session: AgentSession,
) -> None:
    execution = await session.start(ExecHeader(command="exec 0<&-; sleep 0.2; echo done"),
                                    stdin=True)
    output = asyncio.create_task(collect(execution))
    await asyncio.sleep(0.1)
    await execution.write_stdin(b"x" * (3 * STDIN_WINDOW))
    assert await output == b"done\n"


async def test_a_process_on_a_pty_sees_a_terminal_of_its_size(session: AgentSession) -> None:
    if not Path("/dev/ptmx").exists():
        pytest.skip("no /dev/ptmx")
    execution = await session.start(
        ExecHeader(command="tty; stty size; read line; stty size; echo got $line",
                   pty=(100, 30)), stdin=True,
    )
    output = asyncio.create_task(collect(execution))
    await asyncio.sleep(0.3)
    await execution.resize(120, 40)
    await execution.write_stdin(b"hello\n")
    lines = (await output).replace(b"\r\n", b"\n").decode().splitlines()
    assert lines[0].startswith("/dev/pts/")
    assert lines[1:] == ["30 100", "hello", "40 120", "got hello"]


async def test_a_signal_right_after_the_start_is_not_lost(session: AgentSession) -> None:
    for _ in range(5):  # the child may not have made its process group yet
        execution = await session.start(ExecHeader(argv=["sleep", "30"]), stdin=False)
        await execution.kill(15)
        assert await asyncio.wait_for(collect(execution), 10) == b""
        assert execution.status == ExitStatus(signal=15)


async def test_a_start_that_fails_is_an_error(session: AgentSession) -> None:
    with pytest.raises(GuestAgentFailed, match="no user nobody-here"):
        await session.start(ExecHeader(argv=["true"], user="nobody-here"), stdin=False)


async def content(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def test_a_file_written_then_read_back(session: AgentSession, tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    data = os.urandom(3 * MAX_PAYLOAD + 17)
    await session.write_file(str(target), content(data[:1000], data[1000:]), 0o640)
    assert target.read_bytes() == data
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temporary file left
    read = b"".join([piece async for piece in session.read_file(str(target))])
    assert read == data


async def test_a_write_replaces_the_file_at_once(session: AgentSession, tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("old")
    await session.write_file(str(target), content(b"new"), 0o600)
    assert target.read_text() == "new"


async def test_file_errors_name_the_path(session: AgentSession, tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(GuestPathNotFound, match=f"cannot read {missing}"):
        [piece async for piece in session.read_file(str(missing))]
    with pytest.raises(GuestPathNotFound, match=f"cannot write {missing}/f"):
        await session.write_file(str(missing / "f"), content(b"x" * (4 * MAX_PAYLOAD)), 0o644)
    with pytest.raises(GuestFileFailed, match="is a directory"):
        [piece async for piece in session.read_file(str(tmp_path))]
    # The channel is fine afterwards.
    assert (await run(session, ExecHeader(argv=["true"])))[2] == ExitStatus(exit_code=0)


# --- Hostile or broken agents ---------------------------------------------------------------

Guest = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def standin(guest: Guest) -> AgentSession:
    host, other = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=other)
    asyncio.get_running_loop().create_task(guest(reader, writer))

    async def opener() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(sock=host)

    return await AgentSession.connect(opener, timeout=2)


async def answer_hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readexactly(len(HELLO))
    writer.write(b"READY\nOK\n" + HELLO)  # leftovers of the identity step come first
    await writer.drain()


async def test_an_agent_that_never_answers_fails_the_connect() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)

    with pytest.raises(GuestAgentFailed, match="did not answer"):
        await standin(silent)


async def test_an_agent_that_floods_garbage_before_hello_is_refused() -> None:
    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(100):
            writer.write(b"x" * 4096)
            await writer.drain()

    with pytest.raises(GuestAgentFailed, match="does not speak"):
        await standin(flood)


async def test_an_agent_that_could_not_start_fails_the_connect_at_once() -> None:
    """banger-agent-failed writes why on the port (an image without perl): the host stops
    waiting, and says nothing ran, so that `vm run` can take ssh instead."""
    async def stopped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ERR banger-agent cannot start: the image has no /usr/bin/perl\n")
        await writer.drain()
        await asyncio.sleep(10)

    with pytest.raises(GuestAgentUnavailable, match="agent cannot start: the image has no"):
        await asyncio.wait_for(standin(stopped), 5)


@pytest.mark.parametrize("garbage", [
    (MAX_PAYLOAD + 1).to_bytes(4, "big") + (1).to_bytes(4, "big") + b"\x05",
    b"\0\0\0\0\0\0\0\1\x63",
])
async def test_garbage_fails_the_streams_in_flight(garbage: bytes) -> None:
    async def hostile(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_hello(reader, writer)
        await reader.read(1)
        writer.write(garbage)
        await writer.drain()

    session = await standin(hostile)
    execution: Execution = await session.exec(ExecHeader(argv=["true"]))
    with pytest.raises(GuestAgentFailed, match="garbage"):
        async for _ in execution.output():
            pass
    assert not session.alive
    with pytest.raises(GuestAgentFailed):
        await session.exec(ExecHeader(argv=["true"]))


async def test_an_agent_that_stops_mid_session_says_why() -> None:
    """Its unit's stop script writes why where the next frame would be: the streams in
    flight fail with that (not "garbage"), and the session keeps it for the next request."""
    async def killed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_hello(reader, writer)
        await reader.read(1)
        writer.write(b"ERR banger-agent stopped (signal, exit status KILL)\n")
        await writer.drain()

    session = await standin(killed)
    execution = await session.exec(ExecHeader(argv=["sleep", "60"]))
    with pytest.raises(GuestAgentFailed, match=r"^the guest agent stopped \(signal"):
        async for _ in execution.output():
            pass
    assert not session.alive
    assert session.stopped == "the guest agent stopped (signal, exit status KILL)"


async def test_an_agent_that_goes_away_fails_the_streams_in_flight() -> None:
    async def leaves(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_hello(reader, writer)
        await reader.read(1)
        writer.close()

    session = await standin(leaves)
    execution = await session.exec(ExecHeader(argv=["true"]))
    with pytest.raises(GuestAgentFailed, match="closed"):
        async for _ in execution.output():
            pass
