from __future__ import annotations

import asyncio
import re
import signal
import stat
from pathlib import Path
from typing import Any

import pytest

from banger.core.errors import (
    BootFailed,
    HostError,
    ImageNotFound,
    InvalidInput,
    InvalidName,
    InvalidState,
    MissingTool,
    NameTaken,
    SSHTimeout,
    VMNotFound,
)
from banger.core.guest import SEED_DIR
from banger.core.models import VM, ProgressEvent, VMSpec, VMState
from banger.core.netplan import mac_for, tap_name_for
from banger.core.sizing import spec_line
from banger.core.units import GIB
from banger.host import hostinfo
from tests.support.daemon_env import Env, supervise_until_stopped

HOST_KEY = "ssh_host_ed25519_key"


async def create(env: Env, **changes: Any) -> VM:
    args: dict[str, Any] = {
        "name": None, "image": None, "vcpu": None, "memory_mib": None, "disk_size": None,
        "start": True,
    }
    args.update(changes)
    return await env.services.vms.create(**args)


def known_hosts(env: Env) -> list[str]:
    return env.paths.known_hosts.read_text().splitlines()


def public_host_key(vm: VM) -> str:
    return (Path(vm.dir) / f"{HOST_KEY}.pub").read_text().strip()


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
    assert env.services.vms.list() == [vm]


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


# start / stop / restart


async def test_starting_a_running_vm_is_invalid(env: Env) -> None:
    vm = await create(env, name="dev")
    with pytest.raises(InvalidState, match="already running"):
        await env.services.vms.start("dev")
    assert env.services.vms.get("dev").pid == vm.pid
    assert len(env.hypervisor.launched) == 1


async def test_stop_marks_stopped_and_removes_the_tap(env: Env) -> None:
    vm = await create(env, name="dev")
    stopped = await env.services.vms.stop("dev")
    assert stopped.state == VMState.STOPPED
    assert stopped.pid is None
    assert env.hypervisor.stopped == [vm.pid]
    assert env.network.taps == {}
    assert env.services.vms.get("dev") == stopped
    # Stopping again is harmless.
    assert (await env.services.vms.stop("dev")).state == VMState.STOPPED


async def test_stopped_vm_starts_again(env: Env) -> None:
    vm = await create(env, name="dev")
    await env.services.vms.stop("dev")
    started = await env.services.vms.start("dev")
    assert started.state == VMState.RUNNING
    assert started.pid != vm.pid
    assert started.ip == vm.ip
    assert env.network.taps == {vm.tap: "banger0"}


async def test_restart(env: Env) -> None:
    vm = await create(env, name="dev")
    restarted = await env.services.vms.restart("dev")
    assert restarted.state == VMState.RUNNING
    assert restarted.pid != vm.pid
    assert env.hypervisor.stopped == [vm.pid]


async def test_failed_start_of_an_existing_vm_keeps_it_stopped(env: Env) -> None:
    await create(env, name="dev", start=False)
    env.probe.outcome = HostError("the VM exited while booting")
    with pytest.raises(HostError):
        await env.services.vms.start("dev")
    vm = env.services.vms.get("dev")
    assert vm.state == VMState.STOPPED
    assert vm.last_error == "the VM exited while booting"
    assert env.network.taps == {}
    assert env.hypervisor.running == {}


async def test_boot_failure_of_an_existing_vm_releases_the_tap(env: Env) -> None:
    await create(env, name="dev", start=False)
    env.hypervisor.fail_start = BootFailed("qemu exited at start")
    with pytest.raises(BootFailed):
        await env.services.vms.start("dev")
    assert env.network.taps == {}
    assert env.services.vms.get("dev").state == VMState.CREATED


async def test_unknown_vm(env: Env) -> None:
    with pytest.raises(VMNotFound) as info:
        await env.services.vms.stop("ghost")
    assert "vm list" in info.value.hint


# delete


async def test_delete_running_without_force_is_refused(env: Env) -> None:
    vm = await create(env, name="dev")
    before = env.leftovers()
    with pytest.raises(InvalidState) as info:
        await env.services.vms.delete("dev", force=False)
    assert "--force" in info.value.hint
    assert env.leftovers() == before
    assert env.hypervisor.is_running(vm.pid, Path(vm.dir))


async def test_delete_with_force_removes_everything(env: Env) -> None:
    vm = await create(env, name="dev")
    deleted = await env.services.vms.delete("dev", force=True)
    assert deleted.id == vm.id
    assert env.hypervisor.running == {}
    assert env.hypervisor.signals == [(vm.pid, signal.SIGKILL)]
    assert env.leftovers() == ([], [], [])
    assert not Path(vm.dir).exists()
    with pytest.raises(VMNotFound):
        env.services.vms.get("dev")


async def test_delete_by_id(env: Env) -> None:
    vm = await create(env, name="dev", start=False)
    await env.services.vms.delete(vm.id, force=False)
    assert env.leftovers() == ([], [], [])


# kill


@pytest.mark.parametrize(
    ("name", "number"),
    [("TERM", signal.SIGTERM), ("KILL", signal.SIGKILL), ("9", 9), ("sigint", signal.SIGINT)],
)
async def test_kill_with_a_signal(env: Env, name: str, number: int) -> None:
    vm = await create(env, name="dev")
    killed = await env.services.vms.kill("dev", name)
    assert env.hypervisor.signals == [(vm.pid, number)]
    assert killed.state == VMState.STOPPED
    assert env.network.taps == {}


@pytest.mark.parametrize("name", ["BOGUS", "", "-9", "99", "0", "SIGTERMX"])
async def test_kill_with_a_bad_signal_is_invalid_input(env: Env, name: str) -> None:
    vm = await create(env, name="dev")
    with pytest.raises(InvalidInput) as info:
        await env.services.vms.kill("dev", name)
    assert "TERM" in info.value.hint
    assert env.hypervisor.signals == []
    assert env.services.vms.get("dev").state == VMState.RUNNING
    assert env.hypervisor.is_running(vm.pid, Path(vm.dir))


async def test_kill_a_stopped_vm_is_invalid(env: Env) -> None:
    await create(env, name="dev", start=False)
    with pytest.raises(InvalidState):
        await env.services.vms.kill("dev", "KILL")


# set


async def test_set_on_a_running_vm_is_refused(env: Env) -> None:
    vm = await create(env, name="dev")
    with pytest.raises(InvalidState):
        await env.services.vms.set("dev", vcpu=4, memory_mib=None, disk_size=None)
    assert env.services.vms.get("dev").spec == vm.spec


async def test_set_grows_the_disk_and_resizes(env: Env) -> None:
    vm = await create(env, name="dev", start=False)
    updated = await env.services.vms.set("dev", vcpu=4, memory_mib=4096, disk_size="16G")
    assert updated.spec == VMSpec(vcpu=4, memory_mib=4096, disk_size_bytes=16 * GIB)
    assert env.disks.work[Path(vm.dir) / "work.ext4"] == 16 * GIB
    assert env.services.vms.get("dev").spec == updated.spec
    launched = await env.services.vms.start("dev")
    [launch] = env.hypervisor.launched
    assert (launch.vcpu, launch.memory_mib) == (4, 4096)
    assert launched.spec == updated.spec


async def test_set_refuses_to_shrink_the_disk(env: Env) -> None:
    vm = await create(env, name="dev", start=False)
    with pytest.raises(InvalidInput, match="shrinking"):
        await env.services.vms.set("dev", vcpu=None, memory_mib=None, disk_size="1G")
    assert env.services.vms.get("dev").spec == vm.spec


@pytest.mark.parametrize(
    "changes",
    [{"vcpu": 0}, {"vcpu": 65}, {"memory_mib": 64}, {"disk_size": "lots"}],
)
async def test_set_validates_like_create(env: Env, changes: dict[str, Any]) -> None:
    vm = await create(env, name="dev", start=False)
    args: dict[str, Any] = {"vcpu": None, "memory_mib": None, "disk_size": None}
    args.update(changes)
    with pytest.raises(InvalidInput):
        await env.services.vms.set("dev", **args)
    assert env.services.vms.get("dev").spec == vm.spec


# access and logs


async def test_access_to_a_running_vm(env: Env) -> None:
    vm = await create(env, name="dev")
    access = env.services.vms.access("dev")
    assert (access.name, access.ip, access.user) == ("dev", vm.ip, "root")
    assert access.identity_file == str(env.paths.default_ssh_key)
    assert access.known_hosts == str(env.paths.known_hosts)


async def test_access_to_a_stopped_vm_is_invalid(env: Env) -> None:
    await create(env, name="dev", start=False)
    with pytest.raises(InvalidState) as info:
        env.services.vms.access("dev")
    assert "vm start dev" in info.value.hint


async def test_console_log_reads_from_an_offset(env: Env) -> None:
    vm = await create(env, name="dev")
    log = Path(vm.dir) / "console.log"
    assert env.services.vms.console_log("dev", 0) == (b"", 0)
    log.write_bytes(b"booting\n")
    assert env.services.vms.console_log("dev", 0) == (b"booting\n", 8)
    with log.open("ab") as f:
        f.write(b"login:\n")
    assert env.services.vms.console_log("dev", 8) == (b"login:\n", 15)
    # A new boot truncates the log: an offset past the end starts over.
    log.write_bytes(b"again\n")
    assert env.services.vms.console_log("dev", 15) == (b"again\n", 6)


# known_hosts


async def test_known_hosts_follows_creates_and_deletes(env: Env) -> None:
    first = await create(env, name="one")
    path = env.paths.known_hosts
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert known_hosts(env) == [f"{first.ip},one.vm {public_host_key(first)}"]

    second = await create(env, name="two", start=False)
    assert sorted(known_hosts(env)) == sorted([
        f"{first.ip},one.vm {public_host_key(first)}",
        f"{second.ip},two.vm {public_host_key(second)}",
    ])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    await env.services.vms.delete("one", force=True)
    assert known_hosts(env) == [f"{second.ip},two.vm {public_host_key(second)}"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not path.with_suffix(".tmp").exists()


async def test_reused_address_gets_the_new_key(env: Env) -> None:
    old = await create(env, name="old", start=False)
    old_key = public_host_key(old)
    await env.services.vms.delete("old", force=False)
    new = await create(env, name="new", start=False)
    assert new.ip == old.ip
    assert known_hosts(env) == [f"{new.ip},new.vm {public_host_key(new)}"]
    assert public_host_key(new) != old_key


# crash recovery


async def test_reconcile_marks_dead_vms_stopped(env: Env) -> None:
    dead = await create(env, name="dead")
    alive = await create(env, name="alive")
    assert dead.pid is not None
    env.hypervisor.exit(dead.pid)
    await env.services.vms.reconcile()
    assert env.services.vms.get("dead").state == VMState.STOPPED
    assert env.services.vms.get("dead").pid is None
    assert env.services.vms.get("alive") == alive
    assert env.network.taps == {alive.tap: "banger0"}


async def test_reconcile_adopts_running_vms(env: Env) -> None:
    vm = await create(env, name="dev")
    # The daemon died between launching the VMM and recording that the guest was up.
    env.services.store.put_vm(VM(**{**vm.__dict__, "state": VMState.STARTING}))
    await env.services.vms.reconcile()
    adopted = env.services.vms.get("dev")
    assert adopted.state == VMState.RUNNING
    assert adopted.pid == vm.pid
    assert env.network.taps == {vm.tap: "banger0"}


async def test_reconcile_removes_orphan_taps(env: Env) -> None:
    vm = await create(env, name="dev")
    env.network.taps["bgr0000deadbeef"] = "banger0"
    env.network.taps["tap0"] = "banger0"
    env.network.taps["bgrf00dfeedf00d"] = "someone-elses-bridge"
    await env.services.vms.reconcile()
    assert env.network.taps == {
        vm.tap: "banger0", "tap0": "banger0", "bgrf00dfeedf00d": "someone-elses-bridge",
    }


async def test_reconcile_rewrites_known_hosts(env: Env) -> None:
    vm = await create(env, name="dev")
    env.paths.known_hosts.write_text("stale line\n")
    await env.services.vms.reconcile()
    assert known_hosts(env) == [f"{vm.ip},dev.vm {public_host_key(vm)}"]


async def test_supervisor_notices_a_guest_that_powered_off(env: Env) -> None:
    vm = await create(env, name="dev")
    assert vm.pid is not None
    env.hypervisor.exit(vm.pid)
    await supervise_until_stopped(env, "dev")
    assert env.services.vms.get("dev").state == VMState.STOPPED
    assert env.network.taps == {}


async def test_create_can_stop_waiting_at_the_sshd_banner(env: Env) -> None:
    """`vm run` logs in itself right away, so the daemon skips its own login check."""
    await create(env, name="quick", login_check=False)
    assert env.probe.logins == [False]
