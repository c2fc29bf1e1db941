"""The daemon's API served on a private socket from fake-wired services, with a client."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from banger.client import Client
from banger.daemon.api import make_app
from banger.daemon.main import _bind_socket
from tests.support.daemon_env import Env, ready_env
from tests.support.fakes import (
    FakeHypervisor,
)

T = TypeVar("T")


@dataclass
class Api:
    env: Env
    client: Client
    shutdowns: list[bool] = field(default_factory=list)

    async def call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(method, *args, **kwargs)

    def session(self) -> aiohttp.ClientSession:
        connector = aiohttp.UnixConnector(path=str(self.env.paths.socket))
        return aiohttp.ClientSession(connector=connector)


@contextlib.asynccontextmanager
async def serve(
    tmp_path: Path, hypervisor: FakeHypervisor | None = None,
    make: Callable[[Path], Env] | None = None,
) -> AsyncIterator[Api]:
    """`make(runtime_dir)`: the services to serve, if not the default ones."""
    # Unix socket paths are limited to ~107 bytes; pytest's tmp_path can be longer.
    runtime = Path(tempfile.mkdtemp(prefix="bgr-", dir="/tmp")) / "banger"
    if make is None:
        env = await ready_env(tmp_path, runtime_dir=runtime, hypervisor=hypervisor)
    else:
        env = make(runtime)
    shutdowns: list[bool] = []
    app = make_app(env.services, lambda: shutdowns.append(True))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, _bind_socket(env.paths.socket)).start()
    try:
        yield Api(env, Client(env.paths, autostart=False), shutdowns)
    finally:
        await runner.cleanup()
        env.services.store.close()
        shutil.rmtree(runtime.parent, ignore_errors=True)
