"""The E2B endpoint's routes over HTTP, on fake-wired services whose one VM's guest agent
is the real banger-agent run on this host (tests/support/perlagent.py): its commands run
here, as root (the sandbox user is not made on this host)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from banger.core.config import Config
from banger.core.connect import EnvelopeReader, envelope
from banger.daemon.e2b.endpoint import E2BEndpoint
from banger.daemon.e2b.files import GuestFiles
from banger.daemon.e2b.processes import SandboxProcesses
from banger.daemon.e2b.sandboxes import SandboxService
from tests.support.daemon_env import Env, make_env
from tests.support.fakes import FakeTemplateVMM
from tests.support.host_fakes import FakeAgentChannel
from tests.support.perlagent import perl_agent

ROOT = {"Authorization": "Basic " + base64.b64encode(b"root:").decode()}


@dataclass
class Served:
    env: Env
    endpoint: E2BEndpoint
    http: TestClient[Any, Any]
    key: dict[str, str]

    async def create(self, **body: Any) -> dict[str, Any]:
        response = await self.http.post("/v2/sandboxes", json=body, headers=self.key)
        assert response.status == 201, await response.text()
        made: dict[str, Any] = await response.json()
        return made


def envd(made: dict[str, Any]) -> dict[str, str]:
    return {"E2b-Sandbox-Id": made["sandboxID"], "X-Access-Token": made["envdAccessToken"],
            **ROOT}


def endpoint_of(env: Env) -> E2BEndpoint:
    services = env.services
    guest = services.guest_exec
    return E2BEndpoint(
        services.config, env.paths.config_dir, env.paths.state_dir,
        SandboxService(services.store, services.vms, guest, identity_setup="true"),
        SandboxProcesses(services.guest_processes), GuestFiles(guest),
    )


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    channel = FakeAgentChannel()
    env = make_env(tmp_path, hypervisor=FakeTemplateVMM(), agent=channel)
    await env.keys.make_ed25519(env.paths.default_ssh_key, "banger")
    endpoint = endpoint_of(env)
    with perl_agent() as opener:
        channel.exec_agent = opener
        async with TestClient(TestServer(endpoint.app())) as http:
            yield Served(env, endpoint, http, {"X-API-KEY": endpoint.api_key()})
        await endpoint.close()
    env.services.store.close()


async def test_the_api_key_is_required_and_kept_0600(served: Served) -> None:
    response = await served.http.get("/v2/sandboxes")
    assert response.status == 401
    assert (await response.json())["code"] == 401
    key_file = served.env.paths.config_dir / "e2b-api-key"
    assert key_file.stat().st_mode & 0o777 == 0o600


async def test_create_list_page_timeout_and_kill(served: Served) -> None:
    made = await served.create(templateID="base", metadata={"team": "a"}, timeout=60)
    assert set(made) == {"templateID", "sandboxID", "clientID", "envdVersion",
                         "envdAccessToken"}
    other = await served.create(metadata={"team": "b"})
    response = await served.http.get("/v2/sandboxes", params={"limit": "1"},
                                     headers=served.key)
    assert [s["sandboxID"] for s in await response.json()] == [made["sandboxID"]]
    assert response.headers["x-next-token"] == other["sandboxID"]
    response = await served.http.get("/v2/sandboxes", params={"metadata": "team=b"},
                                     headers=served.key)
    assert [s["sandboxID"] for s in await response.json()] == [other["sandboxID"]]
    response = await served.http.post(f"/sandboxes/{made['sandboxID']}/timeout",
                                      json={"timeout": 1}, headers=served.key)
    assert response.status == 204
    # The deadline is in the store: a new service (a restarted daemon) reaps it.
    services = served.env.services
    again = SandboxService(services.store, services.vms, services.guest_exec)
    await again.reap(time.time() + 2)
    assert [r.sandbox_id for r in again.all()] == [other["sandboxID"]]
    assert made["sandboxID"] not in [vm.name for vm in services.vms.all()]
    response = await served.http.delete(f"/sandboxes/{other['sandboxID']}",
                                        headers=served.key)
    assert response.status == 204
    response = await served.http.get(f"/sandboxes/{other['sandboxID']}", headers=served.key)
    assert response.status == 404


async def test_unsupported_calls_answer_at_once(served: Served) -> None:
    response = await served.http.post("/v3/templates", json={}, headers=served.key)
    assert response.status == 501
    assert "template builds" in (await response.json())["message"]


async def test_start_streams_pid_output_and_end(served: Served, tmp_path: Path) -> None:
    made = await served.create()
    request = envelope({"process": {"cmd": "/bin/sh", "args": ["-c", "echo out; echo err >&2;"
                                                                     " exit 3"],
                                    "cwd": str(tmp_path)}})
    response = await served.http.post(
        "/process.Process/Start", data=request,
        headers={**envd(made), "Content-Type": "application/connect+json"})
    reader = EnvelopeReader()
    events = [m["event"] for m in reader.feed(await response.read())]
    assert reader.ended
    assert "pid" in events[0]["start"]
    output = {k: base64.b64decode(v) for e in events[1:-1] for k, v in e["data"].items()}
    assert output == {"stdout": b"out\n", "stderr": b"err\n"}
    assert events[-1]["end"]["exitCode"] == 3


async def test_envd_calls_need_the_sandboxs_token(served: Served) -> None:
    made = await served.create()
    wrong = {**envd(made), "X-Access-Token": "nope"}
    assert (await served.http.get("/health", headers=wrong)).status == 401
    unknown = {**envd(made), "E2b-Sandbox-Id": "e2b-none"}
    assert (await served.http.get("/health", headers=unknown)).status == 502
    assert (await served.http.get("/health", headers=envd(made))).status == 204


async def test_files_and_filesystem_calls(served: Served, tmp_path: Path) -> None:
    made = await served.create()
    target = tmp_path / "dir" / "f.txt"
    response = await served.http.post("/files", params={"path": str(target)}, data=b"hello",
                                      headers={**envd(made),
                                               "Content-Type": "application/octet-stream"})
    assert await response.json() == [{"name": "f.txt", "type": "file", "path": str(target)}]
    assert target.read_bytes() == b"hello"
    response = await served.http.get("/files", params={"path": str(target)},
                                     headers=envd(made))
    assert await response.read() == b"hello"
    response = await served.http.post("/filesystem.Filesystem/ListDir",
                                      json={"path": str(tmp_path), "depth": 2},
                                      headers=envd(made))
    paths = sorted(e["path"] for e in (await response.json())["entries"])
    assert str(target) in paths
    response = await served.http.post("/filesystem.Filesystem/Stat",
                                      json={"path": str(tmp_path / "missing")},
                                      headers=envd(made))
    assert response.status == 404
    assert json.loads(await response.read())["code"] == "not_found"
    response = await served.http.get("/files", params={"path": str(tmp_path / "missing")},
                                     headers=envd(made))
    assert response.status == 404


async def test_the_listener_comes_back_after_a_restart(tmp_path: Path) -> None:
    env = make_env(tmp_path, Config(e2b_listen="127.0.0.1:0"))
    first = endpoint_of(env)
    host, port = await first.listen()
    assert host == "127.0.0.1" and port > 0
    await first.close()
    again = endpoint_of(env)
    await again.start()  # the marker says it listened: it does again
    assert again.address is not None
    await again.close()
    env.services.store.close()


async def test_stdin_signals_and_list(served: Served) -> None:
    made = await served.create()
    headers = {**envd(made), "Content-Type": "application/connect+json"}
    request = envelope({"process": {"cmd": "cat"}, "stdin": True, "tag": "cat"})
    async with served.http.post("/process.Process/Start", data=request,
                                headers=headers) as response:
        reader = EnvelopeReader()
        events: list[dict[str, Any]] = []
        while not events:
            events += [m["event"] for m in reader.feed(await response.content.readany())]
        pid = events[0]["start"]["pid"]
        listed = await served.http.post("/process.Process/List", json={}, headers=envd(made))
        assert [p["pid"] for p in (await listed.json())["processes"]] == [pid]
        selector = {"process": {"tag": "cat"}}
        answer = await served.http.post("/process.Process/SendInput", headers=envd(made), json={
            **selector, "input": {"stdin": base64.b64encode(b"typed").decode()}})
        assert answer.status == 200, await answer.text()
        answer = await served.http.post("/process.Process/CloseStdin", json=selector,
                                        headers=envd(made))
        assert answer.status == 200
        while not reader.ended:
            events += [m["event"] for m in reader.feed(await response.content.readany())]
    output = b"".join(base64.b64decode(e["data"]["stdout"]) for e in events if "data" in e)
    assert output == b"typed"
    assert events[-1]["end"]["exitCode"] == 0
    answer = await served.http.post("/process.Process/SendSignal", headers=envd(made),
                                    json={"process": {"pid": 999999},
                                          "signal": "SIGNAL_SIGKILL"})
    assert answer.status == 404
