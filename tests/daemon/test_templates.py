"""Warm templates in TemplateService and VMService, on a fake VMM and a fake guest agent."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from banger.core.config import Config
from banger.core.errors import BootFailed, HostError, Unsupported
from banger.core.models import VM, ProgressEvent, VMState
from banger.daemon.templates import TemplateService, remove_old_layout
from tests.support.daemon_env import Env, make_env
from tests.support.fakes import FakeFirecrackerTemplateVMM, FakeTemplateVMM, launch_spec_in
from tests.support.host_fakes import FakeAgentChannel


@pytest.fixture
async def warm(tmp_path: Path) -> AsyncIterator[tuple[Env, FakeTemplateVMM, FakeAgentChannel]]:
    vmm, agent = FakeTemplateVMM(), FakeAgentChannel()
    built = make_env(tmp_path, hypervisor=vmm, agent=agent)
    await built.keys.make_ed25519(built.paths.default_ssh_key, "banger")
    await built.services.images.ensure("debian-bookworm", lambda _: None)
    yield built, vmm, agent
    await close(built)


async def close(env: Env) -> None:
    for service in env.services.templates.values():
        await service.close()
    env.services.store.close()


def templates(env: Env) -> TemplateService:
    found = env.services.default_templates()
    assert found is not None
    return found


async def create(env: Env, name: str, events: list[ProgressEvent] | None = None,
                 **changes: Any) -> VM:
    args: dict[str, Any] = {
        "name": name, "image": None, "vcpu": None, "memory_mib": None, "disk_size": None,
        "start": True,
    }
    args.update(changes)
    sink = events if events is not None else []
    return await env.services.vms.create(progress=sink.append, **args)


async def create_falling_back_to_cold(env: Env, reason: str) -> VM:
    """Create VM "one", whose restore fails: it runs, booted cold, and the first warning
    says so and why."""
    events: list[ProgressEvent] = []
    vm = await create(env, "one", events)
    assert vm.state == VMState.RUNNING and vm.template == ""
    warnings = [e.message for e in events if e.stage == "warning"]
    assert warnings and "booting cold" in warnings[0] and reason in warnings[0]
    return vm


async def test_build_boots_a_template_vm_without_identity_and_saves_it(
    warm: tuple[Env, FakeTemplateVMM, FakeAgentChannel],
) -> None:
    env, vmm, agent = warm
    template = await templates(env).build("debian-bookworm")
    spec = vmm.launched[-1]
    assert spec.memory_shared and spec.agent and not spec.incoming
    assert "banger.agent" in spec.cmdline and "banger.ip=" not in spec.cmdline
    assert agent.ready == [spec.agent_socket]
    assert template.state.read_text() == "device state"
    assert template.root.exists() and template.memory.exists()
    # The template VM is gone, and so is its TAP and its placeholder work disk.
    assert not vmm.running
    assert not env.network.taps
    assert not (template.dir / "work.ext4").exists()
    assert template.dir == env.paths.state_dir / "templates" / "qemu" / "debian-bookworm"
    assert templates(env).describe("debian-bookworm") is not None


async def test_failed_build_leaves_nothing(
    warm: tuple[Env, FakeTemplateVMM, FakeAgentChannel],
) -> None:
    env, vmm, agent = warm
    agent.fail = BootFailed("the template's agent did not settle")
    with pytest.raises(BootFailed):
        await templates(env).build("debian-bookworm")
    assert not vmm.running and not env.network.taps
    assert list((env.paths.state_dir / "templates" / "qemu").iterdir()) == []


async def test_vm_restores_from_the_template_with_its_own_identity(
    warm: tuple[Env, FakeTemplateVMM, FakeAgentChannel],
) -> None:
    env, vmm, agent = warm
    template = await templates(env).build("debian-bookworm")
    events: list[ProgressEvent] = []
    vm = await create(env, "one", events)
    assert vm.state == VMState.RUNNING and vm.template == template.meta.key
    spec, state = vmm.restored[-1]
    assert state == template.state and spec.memory_file == template.memory
    # The VM's root disk is its own copy of the template's.
    assert (Path(vm.dir) / "root.qcow2").read_bytes() == template.root.read_bytes()
    socket, identity = agent.identities[-1]
    assert socket == spec.agent_socket
    assert (identity.hostname, identity.mac) == ("one", vm.mac)
    assert identity.ip_cidr == f"{vm.ip}/24"
    assert any("warm template" in e.message for e in events)

    other = await create(env, "two")
    second = agent.identities[-1][1]
    assert other.ip != vm.ip and second.seed != identity.seed


async def test_a_restored_guest_has_its_network_rules_while_it_applies_its_identity(
    warm: tuple[Env, FakeTemplateVMM, FakeAgentChannel],
) -> None:
    env, _, agent = warm
    await templates(env).build("debian-bookworm")
    send, ruled = agent.send_identity, []

    async def slow_guest(socket: Path, identity: Any, timeout: float, alive: Any) -> None:
        for _ in range(50):  # the guest at work: the admission's sync runs meanwhile
            await asyncio.sleep(0)
        ruled.extend(g.name for g in env.services.vm_followers.nat.guests())
        await send(socket, identity, timeout, alive)

    agent.send_identity = slow_guest  # type: ignore[method-assign]
    vm = await create(env, "one")
    assert vm.template and ruled == ["one"]


async def test_second_start_of_a_restored_vm_boots_cold(
    warm: tuple[Env, FakeTemplateVMM, FakeAgentChannel],
) -> None:
    env, vmm, _ = warm
    await templates(env).build("debian-bookworm")
    await create(env, "one")
    await env.services.vms.stop("one")
    await env.services.vms.start("one")
    assert len(vmm.restored) == 1
    assert "banger.ip=" in vmm.launched[-1].cmdline


async def test_cold_flag_and_other_sizes_boot_cold(
    warm: tuple[Env, FakeTemplateVMM, FakeAgentChannel],
) -> None:
    env, vmm, _ = warm
    await templates(env).build("debian-bookworm")
    cold = await create(env, "cold", cold=True)
    big = await create(env, "big", memory_mib=4096)
    assert not vmm.restored
    assert cold.template == "" and big.template == ""


async def test_broken_template_falls_back_to_cold_and_is_dropped(
    warm: tuple[Env, FakeTemplateVMM, FakeAgentChannel],
) -> None:
    env, vmm, _ = warm
    await templates(env).build("debian-bookworm")
    vmm.fail_restore = BootFailed("qemu could not load the template: bad state")
    vm = await create_falling_back_to_cold(env, "bad state")
    assert "banger.ip=" in vmm.launched[-1].cmdline
    # The VM's root is a fresh overlay of the base image again, not the template's copy.
    assert Path(vm.dir) / "root.qcow2" in env.disks.overlays
    assert "debian-bookworm" in templates(env)._background  # a new one is being made


async def test_agent_failure_kills_the_restored_vmm_before_booting_cold(
    warm: tuple[Env, FakeTemplateVMM, FakeAgentChannel],
) -> None:
    env, vmm, agent = warm
    await templates(env).build("debian-bookworm")
    agent.fail = BootFailed("the guest agent failed: no work disk labelled banger-work")
    vm = await create(env, "one")
    assert vm.state == VMState.RUNNING
    assert len(vmm.running) == 1  # only the cold-booted VMM, the restored one was killed
    assert vmm.signals


async def test_missing_template_after_create_falls_back(
    warm: tuple[Env, FakeTemplateVMM, FakeAgentChannel],
) -> None:
    env, _, _ = warm
    await templates(env).build("debian-bookworm")
    await create(env, "later", start=False)
    templates(env).discard("debian-bookworm")
    events: list[ProgressEvent] = []
    vm = await env.services.vms.start("later", events.append)
    assert vm.state == VMState.RUNNING
    assert any("booting cold" in e.message for e in events)


async def test_stale_template_warns_and_a_cold_boot_remakes_it(
    warm: tuple[Env, FakeTemplateVMM, FakeAgentChannel],
) -> None:
    env, vmm, _ = warm
    old = await templates(env).build("debian-bookworm")
    image = env.services.images.get("debian-bookworm")
    stat = os.stat(image.rootfs)
    os.utime(image.rootfs, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # image changed
    events: list[ProgressEvent] = []
    vm = await create(env, "one", events)
    assert vm.template == "" and not vmm.restored
    assert any("stale" in e.message and "the image changed" in e.message for e in events)
    remake = templates(env)._background.get("debian-bookworm")
    assert remake is not None  # the cold boot started a new template
    await remake
    assert templates(env).get("debian-bookworm", old.meta.key) is None
    new = templates(env).find(image, vm.spec.vcpu, vm.spec.memory_mib).template
    assert new is not None and new.meta.key != old.meta.key


async def test_vm_with_a_kernel_of_its_own_boots_cold_without_a_warning(
    warm: tuple[Env, FakeTemplateVMM, FakeAgentChannel], tmp_path: Path,
) -> None:
    env, vmm, _ = warm
    await templates(env).build("debian-bookworm")
    kernels = env.services.kernels
    assert kernels is not None
    vmlinuz = tmp_path / "other-vmlinuz"
    vmlinuz.write_bytes(b"k")
    kernels.register("other", str(vmlinuz), None)
    events: list[ProgressEvent] = []
    vm = await create(env, "own-kernel", events, kernel="other")
    assert vm.template == "" and not vmm.restored
    assert vmm.launched[-1].kernel == vmlinuz
    assert not [e for e in events if e.stage == "warning"], events
    await create(env, "usual")  # the image's own kernel: restored
    assert len(vmm.restored) == 1


async def test_first_cold_boot_makes_the_template(
    warm: tuple[Env, FakeTemplateVMM, FakeAgentChannel],
) -> None:
    env, vmm, _ = warm
    await assert_first_cold_boot_makes_the_template(env, vmm)


async def assert_first_cold_boot_makes_the_template(env: Env, vmm: FakeTemplateVMM) -> None:
    """VM "first" boots cold and makes the template in the background; "second" is
    restored from it."""
    await create(env, "first")
    task = templates(env)._background.get("debian-bookworm")
    assert task is not None
    await task
    await create(env, "second")
    assert len(vmm.restored) == 1


async def test_warm_start_off_never_restores(tmp_path: Path) -> None:
    vmm, agent = FakeTemplateVMM(), FakeAgentChannel()
    env = make_env(tmp_path, Config(warm_start=False), hypervisor=vmm, agent=agent)
    await env.keys.make_ed25519(env.paths.default_ssh_key, "banger")
    await env.services.images.ensure("debian-bookworm", lambda _: None)
    await templates(env).build("debian-bookworm")  # an explicit `image warm` still works
    await create(env, "one")
    assert not vmm.restored
    assert not templates(env)._background
    env.services.store.close()


async def test_leftover_builds_are_removed(
    warm: tuple[Env, FakeTemplateVMM, FakeAgentChannel],
) -> None:
    env, vmm, _ = warm
    leftover = env.paths.state_dir / "templates" / "qemu" / ".build-0123456789ab"
    leftover.mkdir(parents=True)
    pid = await vmm.start(launch_spec_in(leftover))
    (leftover / "vmm.pid").write_text(f"{pid}\n")
    templates(env).clean_leftovers()
    assert not leftover.exists() and pid not in vmm.running


async def test_save_failure_is_reported(
    warm: tuple[Env, FakeTemplateVMM, FakeAgentChannel],
) -> None:
    env, vmm, _ = warm

    async def broken(vm_dir: Path, state: Path, memory: Path) -> None:
        raise HostError("saving the template failed: migration blocked")

    vmm.save_template = broken  # type: ignore[method-assign]
    with pytest.raises(HostError, match="migration blocked"):
        await templates(env).build("debian-bookworm")
    assert not vmm.running and not env.network.taps


async def test_vm_run_of_a_restored_vm_skips_the_ssh_probe(
    warm: tuple[Env, FakeTemplateVMM, FakeAgentChannel],
) -> None:
    # The agent's OK means sshd listens with this VM's key: `vm run` logs in at once.
    env, _, agent = warm
    await templates(env).build("debian-bookworm")
    vm = await create(env, "one", start=False)
    started = await env.services.vms.start(vm.name, login_check=False)
    assert started.state == VMState.RUNNING and agent.identities
    assert env.probe.calls == []
    # `vm create` (login_check) still proves a login works.
    await create(env, "two")
    assert env.probe.logins == [True]


async def test_failed_background_build_is_not_retried_by_every_cold_boot(
    warm: tuple[Env, FakeTemplateVMM, FakeAgentChannel],
) -> None:
    env, vmm, agent = warm
    agent.fail = BootFailed("the template's agent did not settle")
    await create(env, "first")
    task = templates(env)._background.get("debian-bookworm")
    assert task is not None
    await task
    await create(env, "second", cold=True)
    await create(env, "third")
    assert "debian-bookworm" not in templates(env)._background
    assert not vmm.restored
    # `image warm` still tries, and then cold boots offer templates again.
    await templates(env).build("debian-bookworm")
    await create(env, "fourth")
    assert len(vmm.restored) == 1


# Firecracker: the same flow with its own roots and agent channel, in its own templates.


@pytest.fixture
async def both(tmp_path: Path) -> AsyncIterator[tuple[Env, FakeTemplateVMM,
                                                     FakeFirecrackerTemplateVMM, FakeAgentChannel]]:
    """A daemon with both backends making templates, Firecracker the default."""
    qemu, firecracker = FakeTemplateVMM(), FakeFirecrackerTemplateVMM()
    vsock = FakeAgentChannel()
    built = make_env(
        tmp_path, Config(backend="firecracker"), hypervisor=qemu, agent=FakeAgentChannel(),
        firecracker=firecracker, firecracker_agent=vsock,
    )
    await built.keys.make_ed25519(built.paths.default_ssh_key, "banger")
    await built.services.images.ensure("debian-bookworm", lambda _: None)
    yield built, qemu, firecracker, vsock
    await close(built)


async def test_firecracker_template_is_made_with_its_own_root_and_vsock_channel(
    both: tuple[Env, FakeTemplateVMM, FakeFirecrackerTemplateVMM, FakeAgentChannel],
) -> None:
    env, _, vmm, vsock = both
    template = await templates(env).build("debian-bookworm")
    assert templates(env).backend == "firecracker"
    assert template.dir == env.paths.state_dir / "templates" / "firecracker" / "debian-bookworm"
    assert template.meta.inputs.backend == "firecracker"
    spec = vmm.launched[-1]
    assert spec.agent and "banger.agent" in spec.cmdline
    # Its root made by the backend, with the default disk size; the placeholder named like
    # a VM's work disk (the snapshot records drives by name).
    (kind, root_dir, size), = vmm.roots
    assert kind == "prepare" and root_dir.name.startswith(".build-") and size == 8 << 30
    assert spec.work_disk.name == "work.ext4"
    assert vsock.ready == [spec.vm_dir / "vsock.sock"]
    assert template.memory.read_bytes() == b"ram" and template.state.exists()
    left = sorted(p.name for p in template.dir.iterdir())
    assert left == ["console.log", "memory", "meta.json", "overlay.ext4", "state"]
    assert templates(env).describe("debian-bookworm")["backend"] == "firecracker"  # type: ignore[index]


async def test_firecracker_vm_restores_onto_a_copy_of_the_template_root(
    both: tuple[Env, FakeTemplateVMM, FakeFirecrackerTemplateVMM, FakeAgentChannel],
) -> None:
    env, qemu, vmm, vsock = both
    template = await templates(env).build("debian-bookworm")
    events: list[ProgressEvent] = []
    vm = await create(env, "one", events)
    assert vm.backend == "firecracker" and vm.template == template.meta.key
    assert vmm.roots[-1] == ("clone", Path(vm.dir), 0)
    assert (Path(vm.dir) / "overlay.ext4").read_text() == "the template's root"
    spec, state = vmm.restored[-1]
    assert state == template.state and spec.memory_file == template.memory
    assert not spec.memory_shared
    socket, identity = vsock.identities[-1]
    assert socket == Path(vm.dir) / "vsock.sock" and identity.hostname == "one"
    assert any("warm template" in e.message for e in events)
    assert not qemu.restored and not qemu.launched


async def test_templates_of_one_image_on_two_backends_do_not_collide(
    both: tuple[Env, FakeTemplateVMM, FakeFirecrackerTemplateVMM, FakeAgentChannel],
) -> None:
    env, qemu, firecracker, _ = both
    on_qemu = await env.services.templates["qemu"].build("debian-bookworm")
    on_firecracker = await env.services.templates["firecracker"].build("debian-bookworm")
    assert on_qemu.dir != on_firecracker.dir and on_qemu.meta.key != on_firecracker.meta.key
    assert on_qemu.state.read_text() == "device state" and on_qemu.root.exists()
    await create(env, "q", backend="qemu")
    await create(env, "f", backend="firecracker")
    assert qemu.restored[-1][1] == on_qemu.state
    assert firecracker.restored[-1][1] == on_firecracker.state
    # `image warm --delete` and image deletion drop both; a broken one drops only its own.
    firecracker.fail_restore = BootFailed("firecracker refused PUT /snapshot/load: bad state")
    await create(env, "g", backend="firecracker")
    assert env.services.templates["qemu"].get("debian-bookworm", on_qemu.meta.key)
    assert not env.services.templates["firecracker"].get(
        "debian-bookworm", on_firecracker.meta.key
    )


async def test_firecracker_restore_failure_boots_cold_on_a_fresh_root(
    both: tuple[Env, FakeTemplateVMM, FakeFirecrackerTemplateVMM, FakeAgentChannel],
) -> None:
    env, _, vmm, vsock = both
    await templates(env).build("debian-bookworm")
    vsock.fail = BootFailed("the guest agent did not accept a connection on vsock port 1024")
    vm = await create_falling_back_to_cold(env, "vsock port 1024")
    assert vmm.roots[-1] == ("prepare", Path(vm.dir), vm.spec.disk_size_bytes)
    assert (Path(vm.dir) / "overlay.ext4").read_text().startswith("fresh over ")
    assert "banger.ip=" in vmm.launched[-1].cmdline
    assert len(vmm.running) == 1  # the restored VMM was killed


async def test_a_cold_firecracker_boot_makes_its_template(
    both: tuple[Env, FakeTemplateVMM, FakeFirecrackerTemplateVMM, FakeAgentChannel],
) -> None:
    env, _, vmm, _ = both
    await assert_first_cold_boot_makes_the_template(env, vmm)
    # The QEMU backend makes its own template after its own first cold boot.
    await create(env, "third", backend="qemu")
    assert "debian-bookworm" in env.services.templates["qemu"]._background


async def test_templates_from_before_the_backend_split_are_removed(tmp_path: Path) -> None:
    root = tmp_path / "templates"
    old = root / "debian-bookworm"
    old.mkdir(parents=True)
    (old / "meta.json").write_text("{}")
    current = root / "qemu" / "debian-bookworm"
    current.mkdir(parents=True)
    (current / "meta.json").write_text("{}")
    remove_old_layout(root)
    assert not old.exists() and current.exists()


async def test_images_that_install_sshd_on_first_boot_get_no_template(
    warm: tuple[Env, FakeTemplateVMM, FakeAgentChannel],
) -> None:
    env, vmm, _ = warm
    image = env.services.images.get("debian-bookworm")
    env.services.store.put_image(replace(image, ssh_on_first_boot=True))
    with pytest.raises(Unsupported, match="no openssh-server"):
        await templates(env).build("debian-bookworm")
    await create(env, "first", nat=True)
    assert "debian-bookworm" not in templates(env)._background
    assert not vmm.launched or all(spec.memory_file is None for spec in vmm.launched)
