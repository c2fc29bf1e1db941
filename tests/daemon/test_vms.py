"""The short VM transitions and queries of VMService on fake adapters."""

from __future__ import annotations

import signal
import stat
from pathlib import Path
from typing import Any

import pytest

from banger.core.errors import (
    BootFailed,
    DiskFull,
    HostError,
    InvalidInput,
    InvalidState,
    VMNotFound,
)
from banger.core.models import VMSpec, VMState
from banger.core.units import GIB
from tests.support.daemon_env import Env, create, known_hosts, public_host_key

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
    assert env.hypervisor.released == [Path(vm.dir)]  # its VMM's uid goes back
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


async def test_a_work_disk_larger_than_the_free_space_is_refused(env: Env) -> None:
    env.disks.free = 4 * GIB
    with pytest.raises(DiskFull) as info:
        await create(env, name="big", disk_size="8G")
    assert "the work disk of big needs up to 8G but" in info.value.message
    assert "has 4G free" in info.value.message
    assert env.leftovers() == ([], [], [])
    await create(env, name="small", disk_size="2G", start=False)


async def test_growing_a_work_disk_needs_room_for_the_growth(env: Env) -> None:
    await create(env, name="grow", disk_size="2G", start=False)
    env.disks.free = 3 * GIB
    with pytest.raises(DiskFull, match="growing the work disk of grow"):
        await env.services.vms.set("grow", vcpu=None, memory_mib=None, disk_size="8G")
    assert env.services.vms.get("grow").spec.disk_size_bytes == 2 * GIB
    vm = await env.services.vms.set("grow", vcpu=None, memory_mib=None, disk_size="4G")
    assert vm.spec.disk_size_bytes == 4 * GIB
