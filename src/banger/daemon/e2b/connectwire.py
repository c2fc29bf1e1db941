"""What the envd routes share: reading a Connect request, answering a unary call or a
server stream (core/connect.py frames them), the sandbox a request is for, and the guest
user it acts as."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from banger.core.connect import EnvelopeReader, RPCError, decode, end_of_stream, envelope
from banger.core.e2bwire import DEFAULT_USER, SandboxRecord
from banger.core.errors import BangerError, GuestPathNotFound, InvalidInput, NotFound

log = logging.getLogger("banger.e2b")

SANDBOX = web.RequestKey("sandbox", SandboxRecord)
STREAM_TYPE = "application/connect+json"
# Idle server streams send a keepalive this often unless the client asks otherwise.
DEFAULT_KEEPALIVE = 30.0

Unary = Callable[[web.Request, dict[str, Any]], Awaitable[dict[str, Any]]]
Streamed = Callable[[web.Request, dict[str, Any]], AsyncIterator[dict[str, Any]]]


def user_of(request: web.Request) -> str:
    """The guest user a call acts as: the username of its Basic credentials (the SDK sends
    them when given `user=`), else envd's default user."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Basic "):
        try:
            name = base64.b64decode(header[6:], validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            raise RPCError("unauthenticated", "malformed Basic credentials") from None
        if name:
            return name
    return DEFAULT_USER


def as_rpc_error(exc: BaseException) -> RPCError:
    if isinstance(exc, RPCError):
        return exc
    if isinstance(exc, GuestPathNotFound):
        return RPCError("not_found", exc.message)
    if isinstance(exc, NotFound):
        return RPCError("not_found", exc.message)
    if isinstance(exc, InvalidInput):
        return RPCError("invalid_argument", exc.message)
    if isinstance(exc, BangerError):
        return RPCError("unavailable" if exc.http_status >= 500 else "failed_precondition",
                        exc.message)
    log.exception("unexpected error in an envd call")
    return RPCError("internal", f"internal error: {exc!r}")


def unary(handler: Unary) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def serve(request: web.Request) -> web.Response:
        try:
            message = decode(await request.read())
            answer = await handler(request, message)
        except Exception as exc:
            error = as_rpc_error(exc)
            return web.json_response(error.body(), status=error.http_status)
        return web.json_response(answer)
    return serve


def streamed(
    handler: Streamed, keepalive: dict[str, Any],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A server stream: the request is one enveloped message; each message the handler
    yields is sent as it comes, keepalives fill silences, and the stream always ends with
    an end-of-stream envelope (carrying the error, if any)."""

    async def serve(request: web.Request) -> web.StreamResponse:
        # The whole request first: an HTTP/1.1 client may stop sending its body once the
        # response's headers arrive.
        body = await request.read()
        response = web.StreamResponse(headers={"Content-Type": STREAM_TYPE})
        await response.prepare(request)
        interval = _keepalive_interval(request)
        error: RPCError | None = None
        try:
            messages = EnvelopeReader().feed(body)
            if len(messages) != 1:
                raise RPCError("invalid_argument", "a server stream takes exactly one message")
            async for item in _with_keepalives(handler(request, messages[0]), interval,
                                                keepalive):
                await response.write(envelope(item))
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:
            error = as_rpc_error(exc)
        with contextlib.suppress(ConnectionResetError):
            await response.write(end_of_stream(error))
            await response.write_eof()
        return response

    return serve


def _keepalive_interval(request: web.Request) -> float:
    try:
        return max(1.0, float(request.headers.get("Keepalive-Ping-Interval", "")))
    except ValueError:
        return DEFAULT_KEEPALIVE


async def _with_keepalives(
    items: AsyncIterator[dict[str, Any]], interval: float, keepalive: dict[str, Any],
) -> AsyncIterator[dict[str, Any]]:
    """`items`, with a keepalive event whenever none came for `interval` seconds."""
    pending: asyncio.Task[dict[str, Any]] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(items))
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield keepalive
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield item
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()
