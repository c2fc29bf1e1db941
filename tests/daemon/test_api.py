"""The daemon's HTTP API on a real Unix socket, driven by the real client (in a thread, as the
CLI is synchronous) and by raw requests where the wire format itself is the point."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import pytest

from banger.client import Client
from banger.core import errors
from banger.core.errors import (
    APIError,
    BangerError,
    ImageNotFound,
    InvalidInput,
    InvalidName,
    InvalidState,
    NameTaken,
    Unsupported,
    VMNotFound,
)
from banger.core.models import ProgressEvent, VMState
from tests.support.api import Api, serve
from tests.support.daemon_env import Env, make_env, ready_env
from tests.support.fakes import (
    FakeFirecrackerTemplateVMM,
    FakeSnapshotVMM,
    FakeTemplateVMM,
)
from tests.support.host_fakes import FakeAgentChannel


async def test_socket_is_private(api: Api) -> None:
    mode = api.env.paths.socket.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


async def test_status(api: Api) -> None:
    info = await api.call(api.client.status)
    assert info["socket"] == str(api.env.paths.socket)
    assert info["state_dir"] == str(api.env.paths.state_dir)
    assert (info["backend"], info["accel"], info["vms"]) == ("qemu", "tcg", 0)


async def test_errors_carry_code_message_and_hint(api: Api) -> None:
    async with api.session() as session, session.get("http://bangerd/v1/vms/ghost") as response:
        assert response.status == 404
        body = await response.json()
    assert body == {"error": {
        "code": "vm_not_found",
        "message": "no VM named 'ghost'",
        "hint": errors.VMNotFound.default_hint,
    }}


ERROR_CLASSES = [
    cls for cls in errors._all_subclasses(BangerError) if cls is not errors.APIError
]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.code)
async def test_every_error_comes_back_as_the_same_class(
    api: Api, monkeypatch: pytest.MonkeyPatch, cls: type[BangerError]
) -> None:
    def fail(name: str) -> None:
        raise cls(f"{name} went wrong", hint="do the other thing")

    monkeypatch.setattr(api.env.services.vms, "get", fail)
    with pytest.raises(BangerError) as info:
        await api.call(api.client.get_vm, "dev")
    assert type(info.value) is cls
    assert info.value.message == "dev went wrong"
    assert info.value.hint == "do the other thing"


async def test_unexpected_exceptions_are_internal_errors(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash() -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(api.env.services.vms, "all", crash)
    async with api.session() as session, session.get("http://bangerd/v1/vms") as response:
        assert response.status == 500
        body = await response.json()
    assert body["error"]["code"] == "internal"
    assert "disk on fire" in body["error"]["message"]
    assert "bangerd.log" in body["error"]["hint"]
    with pytest.raises(APIError, match="disk on fire"):
        await api.call(api.client.list_vms)


async def test_create_streams_progress_then_the_result(api: Api) -> None:
    events: list[ProgressEvent] = []
    vm = await api.call(api.client.create_vm, name="dev", on_progress=events.append)
    assert vm.name == "dev"
    assert vm.state == VMState.RUNNING
    assert events[0].stage == "spec"
    assert events[0].message.startswith("spec: ")
    assert events[-1].stage == "ready"
    assert await api.call(api.client.get_vm, "dev") == vm


async def test_create_stream_on_the_wire(api: Api) -> None:
    async with api.session() as session, session.post(
        "http://bangerd/v1/vms", json={"name": "dev", "start": False}
    ) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in (await response.read()).splitlines()]
    *events, last = lines
    assert events
    assert all(set(item) == {"event"} for item in events)
    assert set(events[0]["event"]) == {"stage", "message", "fraction"}
    assert set(last) == {"result"}
    assert last["result"]["name"] == "dev"
    assert last["result"]["state"] == "created"


async def test_errors_during_a_stream_end_it(api: Api) -> None:
    await api.call(api.client.create_vm, name="dev", start=False)
    async with api.session() as session, session.post(
        "http://bangerd/v1/vms", json={"name": "dev"}
    ) as response:
        lines = [json.loads(line) for line in (await response.read()).splitlines()]
    assert lines[-1]["error"]["code"] == "name_taken"
    assert lines[-1]["error"]["hint"]
    with pytest.raises(NameTaken):
        await api.call(api.client.create_vm, name="dev")
    with pytest.raises(InvalidName):
        await api.call(api.client.create_vm, name="Not_A_Label")
    with pytest.raises(ImageNotFound):
        await api.call(api.client.create_vm, name="other", image="no-such-image")
    assert [vm.name for vm in await api.call(api.client.list_vms)] == ["dev"]


async def test_bad_request_bodies(api: Api) -> None:
    async with api.session() as session:
        async with session.post(
            "http://bangerd/v1/vms", data=b"{not json",
            headers={"Content-Type": "application/json"},
        ) as response:
            assert response.status == 400
            assert (await response.json())["error"]["code"] == "invalid_input"
        async with session.post("http://bangerd/v1/vms", json=["a", "list"]) as response:
            assert response.status == 400
            assert "JSON object" in (await response.json())["error"]["message"]
    with pytest.raises(InvalidInput, match="vcpu must be an integer"):
        await api.call(api.client.create_vm, name="dev", vcpu="two")
    with pytest.raises(InvalidInput, match="offset"):
        await api.call(api.client.request, "GET", "/v1/vms/dev/logs?offset=x")
    # A string is not a bool: "false" used to read as true.
    with pytest.raises(InvalidInput, match="force must be true or false"):
        await api.call(api.client.request, "POST", "/v1/images/pull",
                       {"name": "debian-bookworm", "force": "false"})
    with pytest.raises(InvalidInput, match="ready must be 'login', 'sshd' or 'agent'"):
        await api.call(api.client.request, "POST", "/v1/vms", {"ready": "soon"})


async def test_vm_lifecycle_through_the_client(api: Api) -> None:
    c = api.client
    created = await api.call(c.create_vm, name="dev", start=False)
    assert created.state == VMState.CREATED
    started = await api.call(c.start_vm, "dev")
    assert started.state == VMState.RUNNING
    with pytest.raises(InvalidState):
        await api.call(c.set_vm, "dev", vcpu=4)
    with pytest.raises(InvalidState):
        await api.call(c.delete_vm, "dev")
    access = await api.call(c.vm_access, "dev")
    assert access["ip"] == started.ip
    assert access["known_hosts"] == str(api.env.paths.known_hosts)
    (Path(started.dir) / "console.log").write_bytes(b"hello\n")
    assert await api.call(c.vm_logs, "dev") == (b"hello\n", 6)
    assert await api.call(c.vm_logs, "dev", 6) == (b"", 6)
    stopped = await api.call(c.stop_vm, "dev")
    assert stopped.state == VMState.STOPPED
    resized = await api.call(c.set_vm, "dev", vcpu=3, disk_size="10G")
    assert resized.spec.vcpu == 3
    restarted = await api.call(c.restart_vm, "dev")
    assert restarted.state == VMState.RUNNING
    with pytest.raises(InvalidInput, match="signal"):
        await api.call(c.kill_vm, "dev", "NOPE")
    killed = await api.call(c.kill_vm, "dev", "TERM")
    assert killed.state == VMState.STOPPED
    await api.call(c.start_vm, "dev")
    deleted = await api.call(c.delete_vm, "dev", force=True)
    assert deleted.name == "dev"
    assert await api.call(c.list_vms) == []


async def test_pause_resume_and_snapshots_through_the_client(tmp_path: Path) -> None:
    async with serve(tmp_path, FakeSnapshotVMM()) as served:
        c = served.client
        await served.call(c.create_vm, name="dev")
        assert (await served.call(c.pause_vm, "dev")).state == VMState.PAUSED
        assert (await served.call(c.get_vm, "dev")).state == VMState.PAUSED
        assert (await served.call(c.resume_vm, "dev")).state == VMState.RUNNING
        snapped = await served.call(c.snapshot_vm, "dev")
        assert (Path(snapped.dir) / "snapshot").exists()
        await served.call(c.kill_vm, "dev")
        restored = await served.call(c.start_vm, "dev", from_snapshot=True)
        assert restored.state == VMState.RUNNING


async def test_backends_without_snapshots_answer_unsupported(api: Api) -> None:
    c = api.client
    await api.call(c.create_vm, name="dev")
    with pytest.raises(Unsupported, match="does not support snapshots"):
        await api.call(c.snapshot_vm, "dev")
    with pytest.raises(Unsupported, match="does not support pause/resume"):
        await api.call(c.pause_vm, "dev")
    await api.call(c.stop_vm, "dev")
    with pytest.raises(Unsupported):
        await api.call(c.start_vm, "dev", from_snapshot=True)


async def test_unknown_vm_before_a_stream_starts(api: Api) -> None:
    with pytest.raises(VMNotFound):
        await api.call(api.client.start_vm, "ghost")
    with pytest.raises(VMNotFound):
        await api.call(api.client.restart_vm, "ghost")


async def test_images_through_the_client(api: Api, tmp_path: Path) -> None:
    c = api.client
    events: list[ProgressEvent] = []
    pulled = await api.call(c.pull_image, "debian-bookworm", on_progress=events.append)
    assert pulled.managed
    assert events
    assert [i.name for i in await api.call(c.list_images)] == ["debian-bookworm"]
    assert await api.call(c.get_image, "debian-bookworm") == pulled
    # A name outside the catalog is an OCI reference (docker.io/library/... by default).
    oci = await api.call(c.pull_image, "not-in-catalog")
    assert oci.source == "oci: docker.io/library/not-in-catalog:latest"
    assert oci.kernel == "" and oci.kernel_name == "generic-6.1"
    with pytest.raises(InvalidInput, match="invalid repository"):
        await api.call(c.pull_image, "Not_A/Ref")
    with pytest.raises(InvalidInput, match="name is required"):
        await api.call(c.request, "POST", "/v1/images/pull", {})
    with pytest.raises(InvalidInput, match="absolute"):
        await api.call(c.register_image, "mine", "rootfs.ext4", "vmlinuz")
    rootfs, kernel = tmp_path / "rootfs.ext4", tmp_path / "vmlinuz"
    rootfs.write_bytes(b"r")
    kernel.write_bytes(b"k")
    registered = await api.call(c.register_image, "mine", str(rootfs), str(kernel))
    assert registered.source == "registered"
    assert (await api.call(c.delete_image, "mine")).name == "mine"


async def test_warm_templates_of_either_backend(tmp_path: Path) -> None:
    def both_backends(runtime: Path) -> Env:
        return make_env(
            tmp_path, runtime_dir=runtime, hypervisor=FakeTemplateVMM(), agent=FakeAgentChannel(),
            firecracker=FakeFirecrackerTemplateVMM(), firecracker_agent=FakeAgentChannel(),
        )

    async with serve(tmp_path, make=both_backends) as api:
        c = api.client
        await api.env.keys.make_ed25519(api.env.paths.default_ssh_key, "banger")
        await api.call(c.pull_image, "debian-bookworm")
        assert await api.call(c.image_templates, "debian-bookworm") == (None, {})
        made = await api.call(c.warm_image, "debian-bookworm", backend="firecracker")
        assert made["template"]["backend"] == "firecracker"
        default, every = await api.call(c.image_templates, "debian-bookworm")
        assert default is None and list(every) == ["firecracker"]  # qemu is the default
        await api.call(c.warm_image, "debian-bookworm")
        default, every = await api.call(c.image_templates, "debian-bookworm")
        assert default is not None and default["backend"] == "qemu"
        assert sorted(every) == ["firecracker", "qemu"]
        assert await api.call(c.delete_image_template, "debian-bookworm")
        assert await api.call(c.image_templates, "debian-bookworm") == (None, {})
        for service in api.env.services.templates.values():
            await service.close()


async def test_warm_templates_where_a_backend_makes_none(api: Api) -> None:
    await api.call(api.client.pull_image, "debian-bookworm")
    with pytest.raises(errors.MissingTool, match="firecracker backend") as info:
        await api.call(api.client.warm_image, "debian-bookworm", backend="firecracker")
    assert "banger doctor" in info.value.hint


async def test_unknown_route_is_a_banger_error(api: Api) -> None:
    # A CLI newer than the running daemon may call a route the daemon does not have.
    with pytest.raises(BangerError) as info:
        await api.call(api.client.request, "GET", "/v1/no-such-route")
    assert "404" in info.value.message
    assert "daemon stop" in info.value.hint
    with pytest.raises(BangerError, match="404"):
        await api.call(api.client.stream, "POST", "/v1/no-such-route", {}, lambda _: None)


async def test_shutdown_calls_back(api: Api) -> None:
    assert await api.call(api.client.request, "POST", "/v1/shutdown") == {"ok": True}
    await asyncio.sleep(0)
    assert api.shutdowns == [True]


async def test_no_daemon_is_daemon_unavailable(tmp_path: Path) -> None:
    env = await ready_env(tmp_path)
    client = Client(env.paths, autostart=False)
    with pytest.raises(errors.DaemonUnavailable) as info:
        await asyncio.to_thread(client.list_vms)
    assert str(env.paths.socket) in info.value.message
    assert not client.ping()
    env.services.store.close()
