"""envd's Process service over Connect: Start and Connect stream a process's events (its
pid, its output, its end); List, SendSignal, CloseStdin answer at once. Standard input is
closed when a process starts (the agent's exec channel takes stdin whole, up front), so
SendInput and StreamInput answer `unimplemented`, as does Update (no PTY yet)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from banger.core.connect import RPCError, timeout_seconds
from banger.core.e2bwire import (
    data_event,
    end_event,
    keepalive_event,
    process_info,
    process_start,
    selected_pid,
    signal_number,
    start_event,
)
from banger.daemon.e2b.connectwire import SANDBOX, streamed, unary, user_of
from banger.daemon.e2b.files import home_of, resolve
from banger.daemon.e2b.processes import Event, GuestProcess, ProcessTable

PREFIX = "/process.Process/"


def process_routes(processes: ProcessTable) -> web.RouteTableDef:
    routes = web.RouteTableDef()

    async def start(request: web.Request, message: dict[str, Any]) -> AsyncIterator[
            dict[str, Any]]:
        sandbox = request[SANDBOX]
        wanted = process_start(message)
        if wanted.pty is not None:
            raise RPCError("unimplemented", "PTYs are not supported by banger's E2B endpoint")
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

    async def close_stdin(request: web.Request, message: dict[str, Any]) -> dict[str, Any]:
        _selected(processes, request, message)
        return {}  # already closed: see the module's docstring

    async def no_stdin(_: web.Request, __: dict[str, Any]) -> dict[str, Any]:
        raise RPCError("unimplemented",
                       "stdin of a running process is not supported by banger's E2B endpoint")

    async def no_pty(_: web.Request, __: dict[str, Any]) -> dict[str, Any]:
        raise RPCError("unimplemented", "PTYs are not supported by banger's E2B endpoint")

    process_keepalive = keepalive_event()
    routes.post(PREFIX + "Start")(streamed(start, process_keepalive))
    routes.post(PREFIX + "Connect")(streamed(attach, process_keepalive))
    routes.post(PREFIX + "List")(unary(list_processes))
    routes.post(PREFIX + "SendSignal")(unary(send_signal))
    routes.post(PREFIX + "CloseStdin")(unary(close_stdin))
    routes.post(PREFIX + "SendInput")(unary(no_stdin))
    routes.post(PREFIX + "StreamInput")(unary(no_stdin))
    routes.post(PREFIX + "Update")(unary(no_pty))
    return routes


def _selected(processes: ProcessTable, request: web.Request,
              message: dict[str, Any]) -> GuestProcess:
    vm = request[SANDBOX].vm
    return processes.get(vm, selected_pid(message, processes.by_tag(vm)))


def _message(event: Event) -> dict[str, Any]:
    if event.result is not None:
        return end_event(event.result.exit_code, event.result.signal)
    return data_event(event.stream, event.data)
