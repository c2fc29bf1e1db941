"""Crash recovery and supervision (Supervisor) on fake adapters."""

from __future__ import annotations

from banger.core.models import VM, VMState
from tests.daemon.conftest import Env, create, known_hosts, public_host_key, supervise_until_stopped


async def test_reconcile_marks_dead_vms_stopped(env: Env) -> None:
    dead = await create(env, name="dead")
    alive = await create(env, name="alive")
    assert dead.pid is not None
    env.hypervisor.exit(dead.pid)
    await env.services.supervisor.reconcile()
    assert env.services.vms.get("dead").state == VMState.STOPPED
    assert env.services.vms.get("dead").pid is None
    assert env.services.vms.get("alive") == alive
    assert env.network.taps == {alive.tap: "banger0"}


async def test_reconcile_adopts_running_vms(env: Env) -> None:
    vm = await create(env, name="dev")
    # The daemon died between launching the VMM and recording that the guest was up.
    env.services.store.put_vm(VM(**{**vm.__dict__, "state": VMState.STARTING}))
    await env.services.supervisor.reconcile()
    adopted = env.services.vms.get("dev")
    assert adopted.state == VMState.RUNNING
    assert adopted.pid == vm.pid
    assert env.network.taps == {vm.tap: "banger0"}


async def test_reconcile_removes_orphan_taps(env: Env) -> None:
    vm = await create(env, name="dev")
    env.network.taps["bgr0000deadbeef"] = "banger0"
    env.network.taps["tap0"] = "banger0"
    env.network.taps["bgrf00dfeedf00d"] = "someone-elses-bridge"
    await env.services.supervisor.reconcile()
    assert env.network.taps == {
        vm.tap: "banger0", "tap0": "banger0", "bgrf00dfeedf00d": "someone-elses-bridge",
    }


async def test_reconcile_rewrites_known_hosts(env: Env) -> None:
    vm = await create(env, name="dev")
    env.paths.known_hosts.write_text("stale line\n")
    await env.services.supervisor.reconcile()
    assert known_hosts(env) == [f"{vm.ip},dev.vm {public_host_key(vm)}"]


async def test_supervisor_notices_a_guest_that_powered_off(env: Env) -> None:
    vm = await create(env, name="dev")
    assert vm.pid is not None
    env.hypervisor.exit(vm.pid)
    await supervise_until_stopped(env, "dev")
    assert env.services.vms.get("dev").state == VMState.STOPPED
    assert env.network.taps == {}
