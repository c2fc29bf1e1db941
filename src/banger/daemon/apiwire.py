"""What every API route shares: JSON answers, request bodies checked against the wire
schema (core/api.py), NDJSON streams for long operations, errors as
{"error": {"code", "message", "hint"}}, and streamed bytes."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import errno
import json
import logging
import typing
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from banger.core.apibase import Request
from banger.core.errors import BangerError, DiskFull, InvalidInput
from banger.core.guestapi import ExecResult
from banger.core.models import ProgressEvent, to_dict
from banger.daemon.progress import Progress
from banger.host.agentsession import Output

log = logging.getLogger("banger.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
R = TypeVar("R", bound=Request)
# Operations outlive the request that started them; keep a reference until they finish.
TASKS = web.AppKey("tasks", set[asyncio.Task[None]])


def answer(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, default=str))


def unexpected(exc: BaseException, during: str) -> BangerError:
    """The error to answer for an exception no service turned into a BangerError: a full
    disk is the user's to fix (and named as such); anything else is a bug, logged whole."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        log.warning("%s: %s", during, exc)
        where = f" writing {exc.filename}" if exc.filename else ""
        return DiskFull(f"the host's disk is full ({during}{where})")
    log.exception("unhandled error in %s", during)
    return BangerError(f"internal error: {exc!r}", hint="see bangerd.log")


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BangerError as exc:
        return answer({"error": exc.to_dict()}, exc.http_status)
    except web.HTTPException:
        raise
    except Exception as exc:
        error = unexpected(exc, f"{request.method} {request.path}")
        return answer({"error": error.to_dict()}, error.http_status)


async def body(request: web.Request, schema: type[R]) -> R:
    """The request's JSON body as `schema` (no body: the schema's defaults)."""
    if not request.can_read_body:
        return parse(schema, {})
    try:
        data = await request.json()
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"request body is not JSON: {exc}") from exc
    return parse(schema, data)


def parse(schema: type[R], data: Any) -> R:
    """`data` (a decoded JSON body) as `schema`, or InvalidInput naming the first bad field.
    Strict: no "2" for 2, no "false" for false. Unknown keys are ignored, so an older client
    keeps working with a newer daemon."""
    if not isinstance(data, dict):
        raise InvalidInput("request body must be a JSON object")
    try:
        checked = _validator(schema).model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc) from None
    return schema(**dict(checked))


_VALIDATORS: dict[type[Request], type[BaseModel]] = {}


def _validator(schema: type[Request]) -> type[BaseModel]:
    """A strict pydantic model of the schema's fields, made once per schema (pydantic
    checks a stdlib dataclass strictly only as an instance, not from a dict)."""
    if schema not in _VALIDATORS:
        hints = typing.get_type_hints(schema)
        fields: dict[str, Any] = {
            field.name: (hints[field.name],
                         ... if field.default is dataclasses.MISSING else field.default)
            for field in dataclasses.fields(schema)
        }
        _VALIDATORS[schema] = create_model(
            schema.__name__, __config__=ConfigDict(strict=True, extra="ignore"), **fields
        )
    return _VALIDATORS[schema]


_KIND = {
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "missing": "is required",
}


def _invalid(exc: ValidationError) -> InvalidInput:
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"])
    if error["type"] == "literal_error":
        return InvalidInput(f"{field} must be {error['ctx']['expected']}")
    # A null where a required string goes fails as string_type; it is still "required".
    if error["type"] == "string_type" and error["input"] is None:
        return InvalidInput(f"{field} is required")
    kind = _KIND.get(error["type"], error["msg"].lower())
    return InvalidInput(f"{field} {kind}")


async def stream(
    request: web.Request, operation: Callable[[Progress], Awaitable[Any]]
) -> web.StreamResponse:
    """Run `operation` and stream its progress events, then its result or error, as NDJSON.
    The operation runs to completion even if the client goes away: half-done work would be
    worse than finished work the user can delete."""
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def progress(event: ProgressEvent) -> None:
        queue.put_nowait({"event": to_dict(event)})

    async def run() -> None:
        try:
            result = await operation(progress)
            queue.put_nowait({"result": plain(result)})
        except BangerError as exc:
            queue.put_nowait({"error": exc.to_dict()})
        except BaseException as exc:
            # Also on cancellation (daemon shutdown): the stream must always end.
            queue.put_nowait({"error": unexpected(exc, "operation").to_dict()})
            if not isinstance(exc, Exception):
                raise

    task = asyncio.create_task(run())
    request.app[TASKS].add(task)
    task.add_done_callback(request.app[TASKS].discard)
    client_gone = False
    while True:
        item = await queue.get()
        if not client_gone:
            try:
                await response.write(json.dumps(item, default=str).encode() + b"\n")
            except (ConnectionResetError, RuntimeError):
                client_gone = True
        if "result" in item or "error" in item:
            break
    if not client_gone:
        await response.write_eof()
    return response


async def exec_stream(
    request: web.Request,
    run: Callable[[Callable[[Output], Awaitable[None]]], Awaitable[ExecResult]],
) -> web.StreamResponse:
    """A guest process's output as NDJSON lines {"stdout"|"stderr": base64}, then its
    {"result"} or an {"error"}. Unlike the long operations, it ends with its client: each
    line is written before the next is read from the guest (back-pressure through the agent
    to the process), and a client that goes away kills the process."""
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)

    async def emit(piece: Output) -> None:
        key = "stderr" if piece.stderr else "stdout"
        await response.write(
            json.dumps({key: base64.b64encode(piece.data).decode()}).encode() + b"\n"
        )

    try:
        line: dict[str, Any] = {"result": dataclasses.asdict(await run(emit))}
    except BangerError as exc:
        line = {"error": exc.to_dict()}
    await response.write(json.dumps(line).encode() + b"\n")
    await response.write_eof()
    return response


async def send_bytes(
    request: web.Request, first: bytes, rest: AsyncIterator[bytes], content_type: str, *,
    compress: bool = False,
) -> web.StreamResponse:
    """Answer `first` then `rest` as they come. The caller takes `first` before calling, so
    errors found before the first byte (a missing path) are still plain error answers; one
    after it cuts the response short."""
    response = web.StreamResponse(headers={"Content-Type": content_type})
    if compress:
        response.enable_compression()
    await response.prepare(request)
    try:
        await response.write(first)
        async for piece in rest:
            await response.write(piece)
    except BaseException:
        # The status line is out: an answer that ends without its last chunk is the only
        # way left to say it failed (an error answer written now would land in the body).
        if request.transport is not None:
            request.transport.abort()
        raise
    await response.write_eof()
    return response


def plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
