"""Rebooting a cold boot whose kernel said it will hang (daemon.bootwatch), on fakes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from banger.core.errors import HostError
from banger.core.models import ProgressEvent, VMState
from banger.daemon import bootwatch
from banger.daemon.bootwatch import MAX_RESETS, rebooting_stalled_boots
from tests.support.daemon_env import Env, make_env
from tests.support.fakes import (
    FakeHypervisor,
    FakeResettingTemplateVMM,
    FakeResettingVMM,
    launch_spec_in,
)
from tests.support.host_fakes import FakeAgentChannel

STALL = b"[    0.121] APIC frequency too slow, disabling apic timer\r\n"
HEALTHY = b"[    0.378] PCI: Fatal: No config space access function found\r\n"


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bootwatch, "POLL_SECONDS", 0.01)


async def watch_for(
    vmm: FakeHypervisor, console: Path, seconds: float,
) -> list[ProgressEvent]:
    events: list[ProgressEvent] = []
    spec = launch_spec_in(console.parent, name="box")
    assert spec.console_log == console
    async with rebooting_stalled_boots(vmm, spec, events.append):
        await asyncio.sleep(seconds)
    return events


async def test_a_stalled_boot_is_rebooted_once_with_a_warning(tmp_path: Path) -> None:
    vmm = FakeResettingVMM()
    vmm.console_after_reset = HEALTHY
    console = tmp_path / "console.log"
    console.write_bytes(HEALTHY + STALL)
    events = await watch_for(vmm, console, 0.2)
    assert vmm.resets == [tmp_path]  # the stall before the reset is not read again
    assert [e.stage for e in events] == ["warning"]
    assert events[0].message.startswith("warning: box: the guest kernel disabled its APIC timer")
    assert events[0].message.endswith(f"rebooting it (1/{MAX_RESETS})")


async def test_a_guest_that_keeps_stalling_is_rebooted_at_most_max_resets_times(
    tmp_path: Path,
) -> None:
    vmm = FakeResettingVMM()
    vmm.console_after_reset = STALL
    console = tmp_path / "console.log"
    console.write_bytes(STALL)
    events = await watch_for(vmm, console, 0.3)
    assert len(vmm.resets) == MAX_RESETS == len(events)


async def test_a_healthy_boot_and_a_backend_without_reset_are_left_alone(
    tmp_path: Path,
) -> None:
    console = tmp_path / "console.log"
    console.write_bytes(HEALTHY)
    vmm = FakeResettingVMM()
    assert await watch_for(vmm, console, 0.1) == [] and vmm.resets == []
    console.write_bytes(STALL)
    assert await watch_for(FakeHypervisor(), console, 0.1) == []  # Firecracker: no reset


async def test_a_failed_reset_ends_the_watch_quietly(tmp_path: Path) -> None:
    vmm = FakeResettingVMM()
    vmm.fail_reset = HostError("QMP system_reset failed: no such file")
    console = tmp_path / "console.log"
    console.write_bytes(STALL)
    events = await watch_for(vmm, console, 0.1)
    assert len(events) == 1 and vmm.resets == []


async def test_vm_create_reboots_a_stalled_cold_boot_and_comes_up(tmp_path: Path) -> None:
    vmm = FakeResettingVMM()
    vmm.console = STALL
    vmm.console_after_reset = HEALTHY
    env: Env = make_env(tmp_path, hypervisor=vmm)
    await env.keys.make_ed25519(env.paths.default_ssh_key, "banger")
    await env.services.images.ensure("debian-bookworm", lambda _: None)
    env.probe.ready = asyncio.Event()  # sshd answers only once the guest was rebooted
    vmm.on_reset = env.probe.ready.set
    events: list[ProgressEvent] = []
    try:
        vm = await env.services.vms.create(
            name="box", image=None, vcpu=None, memory_mib=None, disk_size=None, start=True,
            progress=events.append,
        )
    finally:
        env.services.store.close()
    assert vm.state == VMState.RUNNING
    assert vmm.resets == [Path(vm.dir)] and len(vmm.launched) == 1
    warnings = [e.message for e in events if e.stage == "warning"]
    assert len(warnings) == 1 and "rebooting it (1/3)" in warnings[0]


async def test_a_stalled_template_vm_is_rebooted_and_the_template_made(tmp_path: Path) -> None:
    vmm, agent = FakeResettingTemplateVMM(), FakeAgentChannel()
    vmm.console = STALL
    env = make_env(tmp_path, hypervisor=vmm, agent=agent)
    await env.services.images.ensure("debian-bookworm", lambda _: None)
    agent.settled = asyncio.Event()  # the agent answers only once the guest was rebooted
    vmm.on_reset = agent.settled.set
    events: list[ProgressEvent] = []
    templates = env.services.default_templates()
    assert templates is not None
    try:
        template = await templates.build("debian-bookworm", events.append)
    finally:
        await templates.close()
        env.services.store.close()
    assert template.state.exists() and len(vmm.resets) == 1
    assert any("rebooting it (1/3)" in e.message for e in events if e.stage == "warning")
