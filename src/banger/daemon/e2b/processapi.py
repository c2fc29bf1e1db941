"""envd's Process service over Connect: Start and Connect stream a process's events (its
pid, its output, its end); List, SendInput, CloseStdin, SendSignal and Update (a PTY's
size) answer at once; StreamInput is a client stream of stdin pieces, answered at its end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from banger.core.connect import EnvelopeReader, RPCError, end_of_stream, envelope, timeout_seconds
from banger.core.e2bwire import (
    data_event,
    end_event,
    keepalive_event,
    process_info,
    process_start,
    selected_pid,
    signal_number,
    start_event,
    stdin_bytes,
)
from banger.daemon.e2b.connectwire import (
    SANDBOX,
    STREAM_TYPE,
    as_rpc_error,
    streamed,
    unary,
    user_of,
)
from banger.daemon.e2b.files import home_of, resolve
from banger.daemon.e2b.processes import Event, GuestProcess, SandboxProcesses

PREFIX = "/process.Process/"


def process_routes(processes: SandboxProcesses) -> web.RouteTableDef:
    routes = web.RouteTableDef()

    async def start(request: web.Request, message: dict[str, Any]) -> AsyncIterator[
            dict[str, Any]]:
        sandbox = request[SANDBOX]
        wanted = process_start(message)
        user = user_of(request)
        process, queue = await processes.start(
            sandbox.vm, wanted, user=user,
            cwd=resolve(wanted.cwd, user) if wanted.cwd else home_of(user),
            env={**sandbox.envs, **wanted.envs},
            timeout=timeout_seconds(request.headers.get("Connect-Timeout-Ms")) or 0,
        )
        try:
            yield start_event(process.pid)
            while True:
                event = await queue.get()
                yield _message(event)
                if event.result is not None:
                    return
        finally:
            process.listeners.discard(queue)

    async def attach(request: web.Request, message: dict[str, Any]) -> AsyncIterator[
            dict[str, Any]]:
        process = _selected(processes, request, message)
        yield start_event(process.pid)
        async for event in process.events():
            yield _message(event)

    async def list_processes(request: web.Request, _: dict[str, Any]) -> dict[str, Any]:
        running = [p for p in processes.of(request[SANDBOX].vm) if p.running]
        return {"processes": [process_info(p.pid, p.start) for p in running]}

    async def send_signal(request: web.Request, message: dict[str, Any]) -> dict[str, Any]:
        process = _selected(processes, request, message)
        await processes.signal(request[SANDBOX].vm, process.pid,
                               signal_number(message.get("signal")))
        return {}

    async def send_input(request: web.Request, message: dict[str, Any]) -> dict[str, Any]:
        process = _selected(processes, request, message)
        await processes.send_stdin(request[SANDBOX].vm, process.pid, stdin_bytes(message),
                                   close=False)
        return {}

    async def close_stdin(request: web.Request, message: dict[str, Any]) -> dict[str, Any]:
        process = _selected(processes, request, message)
        await processes.send_stdin(request[SANDBOX].vm, process.pid, b"", close=True)
        return {}

    async def update(request: web.Request, message: dict[str, Any]) -> dict[str, Any]:
        process = _selected(processes, request, message)
        size = (message.get("pty") or {}).get("size")
        if size is not None:
            await processes.resize(request[SANDBOX].vm, process.pid,
                                   int(size.get("cols", 0)), int(size.get("rows", 0)))
        return {}

    @routes.post(PREFIX + "StreamInput")
    async def stream_input(request: web.Request) -> web.Response:
        """A client stream: a start message naming the process, then stdin pieces (over
        HTTP/1.1 the whole stream arrives before the answer)."""
        error: RPCError | None = None
        try:
            pid: int | None = None
            for message in EnvelopeReader().feed(await request.read()):
                if "start" in message:
                    pid = _selected(processes, request, message["start"]).pid
                elif "data" in message:
                    if pid is None:
                        raise RPCError("invalid_argument", "stdin data before the start")
                    await processes.send_stdin(request[SANDBOX].vm, pid,
                                               stdin_bytes(message["data"]), close=False)
        except Exception as exc:
            error = as_rpc_error(exc)
        body = (envelope({}) if error is None else b"") + end_of_stream(error)
        return web.Response(body=body, headers={"Content-Type": STREAM_TYPE})

    process_keepalive = keepalive_event()
    routes.post(PREFIX + "Start")(streamed(start, process_keepalive))
    routes.post(PREFIX + "Connect")(streamed(attach, process_keepalive))
    for name, handler in (("List", list_processes), ("SendSignal", send_signal),
                          ("SendInput", send_input), ("CloseStdin", close_stdin),
                          ("Update", update)):
        routes.post(PREFIX + name)(unary(handler))
    return routes


def _selected(processes: SandboxProcesses, request: web.Request,
              message: dict[str, Any]) -> GuestProcess:
    vm = request[SANDBOX].vm
    return processes.get(vm, selected_pid(message, processes.by_tag(vm)))


def _message(event: Event) -> dict[str, Any]:
    if event.result is not None:
        return end_event(event.result.exit_code, event.result.signal)
    return data_event(event.stream, event.data)
