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
from tests.support.daemon_env import Env, make_env, ready_env
from tests.support.fakes import (
    FakeHypervisor,
    FakeTemplateVMM,
)
from tests.support.host_fakes import FakeAgentChannel
from tests.support.perlagent import perl_agent

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


@contextlib.asynccontextmanager
async def serve_with_agent(tmp_path: Path) -> AsyncIterator[Api]:
    """A daemon whose VMs' guest agent is the real banger-agent (run on this host), with
    one running VM, `dev`."""
    channel = FakeAgentChannel()

    def with_agent(runtime: Path) -> Env:
        return make_env(tmp_path, runtime_dir=runtime, hypervisor=FakeTemplateVMM(),
                        agent=channel)

    with perl_agent() as opener:
        channel.exec_agent = opener
        async with serve(tmp_path, make=with_agent) as served:
            await served.env.keys.make_ed25519(served.env.paths.default_ssh_key, "banger")
            await served.call(served.client.create_vm, name="dev")
            yield served
