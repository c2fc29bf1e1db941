"""bangerd serves only its own user and root, whatever the socket's mode says."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from banger.daemon.peers import PEER, Peer, serving_only

NOBODY = 65534
# A client in a child process, so that it can run as another user.
_ASK = """
import http.client, socket, sys
class Unix(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect(sys.argv[1])
conn = Unix("localhost"); conn.request("GET", "/whoami")
response = conn.getresponse(); print(response.status, response.read().decode())
"""


async def _whoami(request: web.Request) -> web.Response:
    peer: Peer = request[PEER]
    return web.json_response({"uid": peer.uid, "pid": peer.pid})


@pytest.fixture
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Path]:
    owner: int = request.param
    app = web.Application(middlewares=[serving_only(owner)])
    app.router.add_get("/whoami", _whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    with tempfile.TemporaryDirectory(prefix="bgp-", dir="/tmp") as tmp:
        os.chmod(tmp, 0o755)
        path = Path(tmp) / "api.sock"
        await web.UnixSite(runner, str(path)).start()
        os.chmod(path, 0o666)  # the mode lets anyone in: the peer check must not
        yield path
        await runner.cleanup()


async def _ask(path: Path, *, as_uid: int | None = None) -> tuple[int, dict[str, object]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _ASK, str(path), stdout=asyncio.subprocess.PIPE,
        user=as_uid, env={"PATH": os.environ["PATH"]},
    )
    out, _ = await proc.communicate()
    status, body = out.decode().split(" ", 1)
    return int(status), json.loads(body)


@pytest.mark.parametrize("served", [os.geteuid()], indirect=True)
async def test_the_owner_is_served_and_known_by_pid(served: Path) -> None:
    status, body = await _ask(served)
    assert status == 200
    assert body["uid"] == os.geteuid()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
@pytest.mark.parametrize("served", [4242], indirect=True)
async def test_root_is_served_and_another_user_is_refused(served: Path) -> None:
    assert (await _ask(served))[0] == 200  # root, though not the owner
    status, body = await _ask(served, as_uid=NOBODY)
    assert status == 403
    error = body["error"]
    assert isinstance(error, dict)
    assert error["code"] == "forbidden"
    assert f"uid {NOBODY}" in str(error["message"])
