"""Pause/resume and snapshots in VMService (and the VMM counters in stats), on a fake backend
that supports them and on one that does not."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from banger.core.errors import InvalidState, Unsupported
from banger.core.firecracker import MetricsSample
from banger.core.models import VM, VMState
from banger.host.stats import FakeProcStats, ProcessFigures
from tests.daemon.conftest import Env, make_env, supervise_until_stopped
from tests.daemon.fakes import FakeSnapshotVMM


@pytest.fixture
async def fc(tmp_path: Path) -> AsyncIterator[tuple[Env, FakeSnapshotVMM]]:
    vmm = FakeSnapshotVMM()
    built = make_env(tmp_path, hypervisor=vmm)
    await built.keys.make_ed25519(built.paths.default_ssh_key, "banger")
    yield built, vmm
    built.services.store.close()


async def create(env: Env, name: str = "dev", **changes: Any) -> VM:
    args: dict[str, Any] = {
        "name": name, "image": None, "vcpu": None, "memory_mib": None, "disk_size": None,
        "start": True,
    }
    args.update(changes)
    return await env.services.vms.create(**args)


async def test_pause_and_resume(fc: tuple[Env, FakeSnapshotVMM]) -> None:
    env, vmm = fc
    vm = await create(env)
    vms = env.services.vms

    paused = await vms.pause("dev")
    assert paused.state == VMState.PAUSED and paused.pid == vm.pid
    assert vmm.paused == {Path(vm.dir)}
    assert (await vms.pause("dev")).state == VMState.PAUSED  # again: nothing to do
    assert vmm.calls == ["pause"]
    with pytest.raises(InvalidState, match="is paused") as info:
        vms.access("dev")
    assert info.value.hint == "banger vm resume dev"
    with pytest.raises(InvalidState, match="already running") as started:
        await vms.start("dev")
    assert started.value.hint == "banger vm resume dev"

    resumed = await vms.resume("dev")
    assert resumed.state == VMState.RUNNING and not vmm.paused
    assert vms.access("dev").ip == vm.ip


async def test_a_paused_vm_stops_after_resuming(fc: tuple[Env, FakeSnapshotVMM]) -> None:
    env, vmm = fc
    await create(env)
    await env.services.vms.pause("dev")
    stopped = await env.services.vms.stop("dev")
    assert stopped.state == VMState.STOPPED and stopped.pid is None
    assert vmm.calls == ["pause", "resume"]
    assert env.network.taps == {}


async def test_a_paused_vm_is_killed_by_delete_force(fc: tuple[Env, FakeSnapshotVMM]) -> None:
    env, vmm = fc
    vm = await create(env)
    await env.services.vms.pause("dev")
    with pytest.raises(InvalidState, match="is running"):
        await env.services.vms.delete("dev", force=False)
    await env.services.vms.delete("dev", force=True)
    assert vmm.signals == [(vm.pid, signal.SIGKILL)]
    assert env.leftovers() == ([], [], [])


async def test_pause_needs_a_running_vm(fc: tuple[Env, FakeSnapshotVMM]) -> None:
    env, _ = fc
    await create(env, start=False)
    with pytest.raises(InvalidState, match="not running"):
        await env.services.vms.pause("dev")
    with pytest.raises(InvalidState, match="not running"):
        await env.services.vms.snapshot("dev")


async def test_reconcile_keeps_paused_vms_paused_and_stops_dead_ones(
    fc: tuple[Env, FakeSnapshotVMM],
) -> None:
    env, vmm = fc
    await create(env, "alive")
    dead = await create(env, "dead")
    for name in ("alive", "dead"):
        await env.services.vms.pause(name)
    assert dead.pid is not None
    vmm.exit(dead.pid)
    await env.services.supervisor.reconcile()
    assert env.services.vms.get("alive").state == VMState.PAUSED
    assert env.services.vms.get("dead").state == VMState.STOPPED


async def test_supervisor_notices_a_paused_vm_that_died(fc: tuple[Env, FakeSnapshotVMM]) -> None:
    env, vmm = fc
    vm = await create(env)
    await env.services.vms.pause("dev")
    assert vm.pid is not None
    vmm.exit(vm.pid)
    await supervise_until_stopped(env, "dev")
    assert env.services.vms.get("dev").state == VMState.STOPPED


async def test_snapshot_then_start_from_it(fc: tuple[Env, FakeSnapshotVMM]) -> None:
    env, vmm = fc
    vm = await create(env)
    vms = env.services.vms

    with pytest.raises(InvalidState, match="already running"):
        await vms.start("dev", from_snapshot=True)
    assert (await vms.snapshot("dev")).state == VMState.RUNNING
    assert (Path(vm.dir) / "snapshot").exists()
    await vms.kill("dev", "KILL")

    restored = await vms.start("dev", from_snapshot=True)
    assert restored.state == VMState.RUNNING and restored.pid != vm.pid
    [spec] = vmm.restored
    assert (spec.tap, spec.vm_dir) == (vm.tap, Path(vm.dir))
    assert len(vmm.launched) == 1  # restored, not booted
    assert env.network.taps == {vm.tap: "banger0"}


async def test_snapshot_of_a_paused_vm_is_refused(fc: tuple[Env, FakeSnapshotVMM]) -> None:
    env, _ = fc
    await create(env)
    await env.services.vms.pause("dev")
    with pytest.raises(InvalidState, match="is paused") as info:
        await env.services.vms.snapshot("dev")
    assert info.value.hint == "banger vm resume dev first"


async def test_start_without_a_snapshot_fails_and_releases_the_tap(
    fc: tuple[Env, FakeSnapshotVMM],
) -> None:
    env, _ = fc
    await create(env, start=False)
    with pytest.raises(InvalidState, match="has no snapshot"):
        await env.services.vms.start("dev", from_snapshot=True)
    assert env.services.vms.get("dev").state == VMState.CREATED
    assert env.network.taps == {}


async def test_backends_without_support_say_so(env: Env) -> None:
    vms = env.services.vms
    await create(env)
    for call in (vms.pause("dev"), vms.resume("dev"), vms.snapshot("dev"),
                 vms.start("dev", from_snapshot=True)):
        with pytest.raises(Unsupported) as info:
            await call
        assert info.value.code == "unsupported"
        assert "--backend firecracker" in info.value.hint
    assert env.services.vms.get("dev").state == VMState.RUNNING


async def test_stats_count_the_vmm_metrics(fc: tuple[Env, FakeSnapshotVMM]) -> None:
    env, vmm = fc
    vm = await create(env)
    assert vm.pid is not None
    proc = cast(FakeProcStats, env.services.adapters.integration.proc)
    proc.processes[vm.pid] = ProcessFigures(100, 500 << 20, None)
    stats = env.services.integration.stats
    vmm.samples = [MetricsSample(1000, 4096, 512, 100, 200, 7)]
    first = (await stats.stats("dev")).samples[-1].host
    assert first is not None and first.vmm is not None
    assert (first.vmm.block_read_bytes, first.vmm.net_tx_bytes, first.vmm.vcpu_exits) == (
        4096, 200, 7
    )
    # Firecracker's samples are deltas; one already counted is not counted again.
    vmm.samples.append(MetricsSample(2000, 1, 2, 3, 4, 5))
    latest = (await stats.stats("dev")).samples[-1].host
    assert latest is not None and latest.vmm is not None
    assert (latest.vmm.block_read_bytes, latest.vmm.block_write_bytes, latest.vmm.net_rx_bytes,
            latest.vmm.net_tx_bytes, latest.vmm.vcpu_exits) == (4097, 514, 103, 204, 12)
