"""A minimal QMP (QEMU Machine Protocol) client over the VM's control socket."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from banger.core.errors import HostError

# QEMU creates the socket file (bind) a moment before it listens; on a loaded host a client
# can land in between and be refused.
_REFUSED_RETRIES = 40
_REFUSED_PAUSE = 0.025


async def _connect(socket_path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    for _ in range(_REFUSED_RETRIES):
        try:
            return await asyncio.open_unix_connection(str(socket_path))
        except ConnectionRefusedError:
            await asyncio.sleep(_REFUSED_PAUSE)
    return await asyncio.open_unix_connection(str(socket_path))


async def qmp_command(
    socket_path: Path, command: str, arguments: dict[str, Any] | None = None,
    *, timeout: float = 5.0,
) -> Any:
    async def exchange() -> Any:
        reader, writer = await _connect(socket_path)
        try:
            await reader.readline()  # greeting
            for execute, args in (("qmp_capabilities", None), (command, arguments)):
                message: dict[str, Any] = {"execute": execute}
                if args:
                    message["arguments"] = args
                writer.write(json.dumps(message).encode() + b"\n")
                await writer.drain()
                while True:
                    line = await reader.readline()
                    if not line:
                        raise HostError(f"QMP closed the connection during {execute}")
                    reply = json.loads(line)
                    if "event" in reply:
                        continue
                    if "error" in reply:
                        raise HostError(f"QMP {execute}: {reply['error'].get('desc')}")
                    break
            return reply.get("return")
        finally:
            writer.close()

    try:
        return await asyncio.wait_for(exchange(), timeout)
    except (OSError, TimeoutError) as exc:
        raise HostError(f"QMP {command} failed: {exc}") from exc
