"""The E2B-compatible endpoint: a TCP listener (the e2b SDK cannot use a Unix socket) on
loopback by default, serving E2B's control plane and envd's calls on one port. Control
calls need the endpoint's API key (`X-API-KEY`), made once and kept 0600 in banger's config
dir; sandbox calls are routed by `E2b-Sandbox-Id` and need that sandbox's own access token
(`X-Access-Token`), which only its create/connect answer gave out.

`banger e2b env` asks bangerd (POST /v1/e2b/endpoint) to start listening; bangerd listens
again after a restart until told otherwise (the marker file in its state dir)."""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from banger.core.config import Config
from banger.core.errors import BangerError, HostError, SandboxNotFound
from banger.daemon.e2b.connectwire import SANDBOX
from banger.daemon.e2b.control import control_routes, error, rest_errors
from banger.daemon.e2b.files import GuestFiles
from banger.daemon.e2b.fsapi import MAX_UPLOAD, filesystem_routes
from banger.daemon.e2b.processapi import process_routes
from banger.daemon.e2b.processes import SandboxProcesses
from banger.daemon.e2b.sandboxes import SandboxService

log = logging.getLogger("banger.e2b")

_ENVD_PREFIXES = ("/process.Process/", "/filesystem.Filesystem/", "/files", "/health")


class E2BEndpoint:
    def __init__(
        self, config: Config, config_dir: Path, state_dir: Path, sandboxes: SandboxService,
        processes: SandboxProcesses, files: GuestFiles,
    ) -> None:
        self._config = config
        self._key_file = config_dir / "e2b-api-key"
        self._marker = state_dir / "e2b-listening"
        self.sandboxes = sandboxes
        self.processes = processes
        self.files = files
        self._runner: web.AppRunner | None = None
        self.address: tuple[str, int] | None = None

    def api_key(self) -> str:
        """The endpoint's API key, made on first use (0600 from its first instant)."""
        try:
            return self._key_file.read_text().strip()
        except FileNotFoundError:
            pass
        key = "e2b_" + secrets.token_hex(20)
        self._key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(self._key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(key + "\n")
        return key

    async def listen(self) -> tuple[str, int]:
        """Start the listener (once); its host and port."""
        if self.address is not None:
            return self.address
        host, _, port = self._config.e2b_listen.rpartition(":")
        host = host.strip("[]")
        app = self.app()
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, int(port), reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise HostError(f"cannot listen on {self._config.e2b_listen}: {exc.strerror}",
                            hint="set e2b_listen in config.toml to a free port") from exc
        self._runner = runner
        self.address = (host, int(runner.addresses[0][1]))  # the port, when 0 was asked
        self._marker.touch()
        log.info("E2B endpoint listening on %s:%d", *self.address)
        return self.address

    async def start(self) -> None:
        """At daemon start: reap timed-out sandboxes, listen again if it did before."""
        self.sandboxes.start_reaper()
        if self._marker.exists():
            try:
                await self.listen()
            except BangerError as exc:
                log.warning("E2B endpoint not restarted: %s", exc.message)

    async def close(self) -> None:
        await self.sandboxes.stop_reaper()
        await self.processes.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._authorized, rest_errors],
                              client_max_size=MAX_UPLOAD)
        app.add_routes(process_routes(self.processes))
        app.add_routes(filesystem_routes(self.files))
        app.add_routes(control_routes(self.sandboxes))
        return app

    @web.middleware
    async def _authorized(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(_ENVD_PREFIXES):
            sandbox_id = request.headers.get("E2b-Sandbox-Id", "")
            try:
                record = self.sandboxes.get(sandbox_id)
            except SandboxNotFound:
                # What E2B's proxy answers: the SDK reports the sandbox as not running.
                return error(502, f"The sandbox {sandbox_id} was not found")
            token = request.headers.get("X-Access-Token", "")
            if not hmac.compare_digest(token.encode(), record.access_token.encode()):
                return error(401, "invalid or missing sandbox access token")
            request[SANDBOX] = record
        else:
            given = request.headers.get("X-API-KEY", "")
            if not hmac.compare_digest(given.encode(), self.api_key().encode()):
                return error(401, "invalid or missing API key (X-API-KEY)")
        return await handler(request)


def endpoint_routes(endpoint: E2BEndpoint) -> web.RouteTableDef:
    """The route on bangerd's Unix socket that `banger e2b env` calls."""
    routes = web.RouteTableDef()

    @routes.post("/v1/e2b/endpoint")
    async def start_endpoint(_: web.Request) -> web.Response:
        host, port = await endpoint.listen()
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{port}"
        return web.json_response({"api_url": url, "sandbox_url": url,
                                  "api_key": endpoint.api_key()})

    return routes


def install(app: web.Application, endpoint: E2BEndpoint) -> None:
    """Wire the endpoint into bangerd's app: its route, its start and its end."""
    app.add_routes(endpoint_routes(endpoint))

    async def started(_: web.Application) -> None:
        await endpoint.start()

    async def closing(_: web.Application) -> None:
        with contextlib.suppress(Exception):
            await endpoint.close()

    app.on_startup.append(started)
    app.on_cleanup.append(closing)
