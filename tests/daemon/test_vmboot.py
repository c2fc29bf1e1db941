"""Creating and booting VMs (VMService.create, VMBoot) on fake adapters."""

from __future__ import annotations

import asyncio
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from banger.core.errors import (
    BootFailed,
    GuestAgentUnavailable,
    HostError,
    ImageNotFound,
    InvalidInput,
    InvalidName,
    MissingTool,
    NameTaken,
    SSHTimeout,
)
from banger.core.guest import SEED_DIR
from banger.core.models import VM, ProgressEvent, VMSpec, VMState
from banger.core.netplan import mac_for, tap_name_for
from banger.core.sizing import spec_line
from banger.core.units import GIB
from banger.host import hostinfo
from tests.support.daemon_env import HOST_KEY, Env, create, known_hosts, public_host_key

# create


async def test_create_boots_a_vm_with_a_generated_name(env: Env) -> None:
    events: list[ProgressEvent] = []
    vm = await create(env, progress=events.append)

    assert re.fullmatch(r"[a-z]+-[a-z]+", vm.name)
    assert vm.state == VMState.RUNNING
    assert vm.spec == VMSpec(vcpu=2, memory_mib=2048, disk_size_bytes=8 * GIB)
    assert vm.ip == "172.16.0.2"
    assert vm.mac == mac_for(vm.id)
    assert vm.tap == tap_name_for(vm.id)
    assert vm.image == "debian-bookworm"
    assert vm.accel == "tcg"
    assert env.hypervisor.is_running(vm.pid, Path(vm.dir))
    assert env.network.taps == {vm.tap: "banger0"}
    assert env.services.store.get_vm(vm.name) == vm
    assert env.services.vms.all() == [vm]


async def test_create_reports_progress_starting_with_the_spec_line(env: Env) -> None:
    events: list[ProgressEvent] = []
    vm = await create(env, vcpu=3, memory_mib=1500, disk_size="4G", progress=events.append)
    assert events[0] == ProgressEvent("spec", spec_line(vm.spec))
    assert events[0].message == "spec: 3 vCPU, 1500 MiB RAM, 4G disk"
    stages = [e.stage for e in events]
    # The default image is built on first use, then the VM is made and booted.
    assert stages.index("image") < stages.index("create") < stages.index("boot")
    assert stages[-2:] == ["ssh", "ready"]
    assert any(vm.ip in e.message for e in events if e.stage == "create")


async def test_create_makes_disks_from_the_image(env: Env) -> None:
    vm = await create(env, name="dev", disk_size="3G")
    image = env.services.images.get("debian-bookworm")
    vm_dir = Path(vm.dir)
    assert vm_dir.parent == env.paths.vms_dir
    assert stat.S_IMODE(vm_dir.stat().st_mode) == 0o700
    assert env.disks.overlays == {vm_dir / "root.qcow2": Path(image.rootfs)}
    assert env.disks.work == {vm_dir / "work.ext4": 3 * GIB}
    assert not (vm_dir / "work-staging").exists()
    [launch] = env.hypervisor.launched
    assert launch.root_disk == vm_dir / "root.qcow2"
    assert launch.work_disk == vm_dir / "work.ext4"
    assert launch.kernel == Path(image.kernel)
    assert (launch.tap, launch.mac) == (vm.tap, vm.mac)
    words = launch.cmdline.split()
    assert "banger.ip=172.16.0.2/24" in words
    assert "banger.gw=172.16.0.1" in words
    assert "banger.hostname=dev" in words
    # guest_aslr = "auto": randomised address spaces except under TCG.
    assert ("norandmaps" in words) == (vm.accel == "tcg")


async def test_work_disk_is_seeded_with_keys(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, str] = {}
    original = env.disks.create_work_disk

    async def spy(path: Path, size_bytes: int, staging: Path) -> None:
        seen["authorized"] = (staging / ".ssh/authorized_keys").read_text()
        seen["mode"] = oct(stat.S_IMODE((staging / ".ssh/authorized_keys").stat().st_mode))
        seen["host_pub"] = (staging / SEED_DIR / f"{HOST_KEY}.pub").read_text()
        seen["host_key"] = (staging / SEED_DIR / HOST_KEY).read_text()
        seen["machine_id"] = (staging / SEED_DIR / "machine-id").read_text()
        await original(path, size_bytes, staging)

    monkeypatch.setattr(env.disks, "create_work_disk", spy)
    vm = await create(env, start=False)
    client_pub = env.paths.default_ssh_key.with_name("id_ed25519.pub").read_text()
    assert seen["authorized"] == client_pub
    assert seen["mode"] == "0o600"
    assert seen["host_pub"].strip() == public_host_key(vm)
    assert seen["host_key"] == (Path(vm.dir) / HOST_KEY).read_text()
    assert re.fullmatch(r"[0-9a-f]{32}\n", seen["machine_id"])
    # The probe trusts exactly the pinned key, never whatever the guest offers.
    await env.services.vms.start(vm.name)
    assert env.probe.calls == [(vm.ip, public_host_key(vm))]


async def test_create_without_start(env: Env) -> None:
    vm = await create(env, name="idle", start=False)
    assert vm.state == VMState.CREATED
    assert vm.pid is None
    assert env.hypervisor.launched == []
    assert env.network.taps == {}


async def test_ip_allocation_takes_the_lowest_free_address(env: Env) -> None:
    first = await create(env, name="a", start=False)
    second = await create(env, name="b", start=False)
    third = await create(env, name="c", start=False)
    assert [first.ip, second.ip, third.ip] == ["172.16.0.2", "172.16.0.3", "172.16.0.4"]
    await env.services.vms.delete("b", force=False)
    assert (await create(env, name="d", start=False)).ip == "172.16.0.3"


async def test_duplicate_name_leaves_nothing_behind(env: Env) -> None:
    await create(env, name="dev")
    before = env.leftovers()
    with pytest.raises(NameTaken) as info:
        await create(env, name="dev")
    assert info.value.code == "name_taken"
    assert env.leftovers() == before
    assert len(env.hypervisor.launched) == 1


async def test_concurrent_creates_with_one_name(env: Env) -> None:
    results = await asyncio.gather(
        create(env, name="dev", start=False), create(env, name="dev", start=False),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["NameTaken", "VM"]
    dirs, rows, _ = env.leftovers()
    assert rows == ["dev"]
    assert len(dirs) == 1


@pytest.mark.parametrize("name", ["Dev", "-dev", "dev_1", "a" * 64, "dev\n"])
async def test_invalid_name_leaves_nothing_behind(env: Env, name: str) -> None:
    with pytest.raises(InvalidName):
        await create(env, name=name)
    assert env.leftovers() == ([], [], [])
    assert env.builder.calls == []


async def test_unknown_image_leaves_nothing_behind(env: Env) -> None:
    with pytest.raises(ImageNotFound) as info:
        await create(env, name="dev", image="no-such-image")
    assert "image register" in info.value.hint
    assert env.leftovers() == ([], [], [])
    assert env.builder.calls == []
    assert env.hypervisor.launched == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"vcpu": 0}, "vcpu"),
        ({"vcpu": 65}, "vcpu"),
        ({"memory_mib": 64}, "memory"),
        ({"disk_size": "huge"}, "disk size"),
    ],
)
async def test_bad_sizes_are_rejected_up_front(
    env: Env, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        await create(env, **changes)
    assert env.leftovers() == ([], [], [])


async def test_missing_qemu_fails_before_anything_is_made(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hostinfo, "which", lambda tool: None)
    with pytest.raises(MissingTool):
        await create(env, name="dev")
    assert env.leftovers() == ([], [], [])


async def test_boot_failure_deletes_the_vm_entirely(env: Env) -> None:
    env.hypervisor.fail_start = BootFailed("qemu exited at start: bad option")
    with pytest.raises(BootFailed, match="bad option"):
        await create(env, name="dev")
    assert len(env.hypervisor.launched) == 1
    assert env.leftovers() == ([], [], [])
    assert known_hosts(env) == []


async def test_guest_dying_during_boot_deletes_the_vm_entirely(env: Env) -> None:
    env.probe.outcome = HostError("the VM exited while booting")
    with pytest.raises(HostError, match="exited"):
        await create(env, name="dev")
    assert env.leftovers() == ([], [], [])
    assert env.hypervisor.running == {}


async def test_ssh_timeout_keeps_the_vm_in_error(env: Env) -> None:
    env.probe.outcome = SSHTimeout("ssh to 172.16.0.2 not ready after 180s")
    with pytest.raises(SSHTimeout):
        await create(env, name="dev")
    vm = env.services.vms.get("dev")
    assert vm.state == VMState.ERROR
    assert "not ready" in vm.last_error
    assert env.hypervisor.is_running(vm.pid, Path(vm.dir))
    assert env.network.taps == {vm.tap: "banger0"}
    assert Path(vm.dir).is_dir()
    # Kept so the user can look: logs and ssh still work.
    assert env.services.vms.access("dev").ip == vm.ip



async def test_create_for_the_agent_returns_once_it_answers_and_ssh_waits_for_sshd(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`vm run -- CMD` goes through the agent, which a cold boot may have up before sshd;
    a login right after (`vm ssh`) still waits for sshd."""
    agent_calls: list[str] = []

    async def agent_answers(vm: VM, timeout: float) -> None:
        agent_calls.append(vm.name)

    monkeypatch.setattr(env.services.guest_exec, "connect", agent_answers)
    env.probe.ready = asyncio.Event()
    events: list[ProgressEvent] = []
    vm = await create(env, name="quick", login_check=False, agent_ready=True,
                      progress=events.append)
    assert vm.state == VMState.RUNNING and agent_calls == ["quick"]
    assert events[-1].message.endswith("s to agent)")
    assert env.probe.logins == [False]  # sshd's wait goes on
    login = asyncio.ensure_future(env.services.vms.login_access("quick"))
    await asyncio.sleep(0.05)
    assert not login.done()
    env.probe.ready.set()
    assert (await login).ip == vm.ip
    assert (await env.services.vms.login_access("quick")).ip == vm.ip  # no wait left


async def test_create_for_the_agent_waits_for_sshd_in_an_image_without_one(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_agent(vm: VM, timeout: float) -> None:
        raise GuestAgentUnavailable("the guest agent cannot start")

    monkeypatch.setattr(env.services.guest_exec, "connect", no_agent)
    env.probe.ready = asyncio.Event()
    waiting = asyncio.ensure_future(
        create(env, name="nope", login_check=False, agent_ready=True)
    )
    await asyncio.sleep(0.05)
    assert not waiting.done()
    env.probe.ready.set()
    assert (await waiting).state == VMState.RUNNING


async def test_create_can_stop_waiting_at_the_sshd_banner(env: Env) -> None:
    """`vm run` logs in itself right away, so the daemon skips its own login check."""
    await create(env, name="quick", login_check=False)
    assert env.probe.logins == [False]
