"""Kernel store, OCI image records and promotion, through the services on fake adapters."""

from __future__ import annotations

from pathlib import Path

import pytest

from banger.core.errors import (
    GuestSetupFailed,
    InvalidInput,
    KernelNotFound,
    ResourceBusy,
    SSHTimeout,
)
from banger.core.models import ProgressEvent, VMState
from banger.daemon.progress import no_progress
from tests.daemon.conftest import Env


async def test_kernel_catalog_pull_register_delete(env: Env, tmp_path: Path) -> None:
    kernels = env.services.kernels
    assert kernels is not None
    listed = {k.name: k for k in kernels.list()}
    assert not listed["generic-6.1"].local and listed["generic-6.12"].catalog
    pulled = await kernels.pull("generic-6.1", no_progress)
    assert pulled.managed and Path(pulled.vmlinuz).is_file()
    assert (await kernels.pull("generic-6.1", no_progress)) == pulled
    with pytest.raises(KernelNotFound):
        await kernels.pull("nope", no_progress)
    vmlinuz = tmp_path / "vmlinuz"
    vmlinuz.write_bytes(b"k")
    mine = kernels.register("mine", str(vmlinuz), None)
    assert not mine.managed
    with pytest.raises(InvalidInput):
        kernels.register("mine", str(vmlinuz), None)
    with pytest.raises(InvalidInput):
        kernels.register("rel", "vmlinuz", None)
    assert {k.name for k in kernels.list() if k.local} == {"generic-6.1", "mine"}
    kernels.delete("generic-6.1")
    assert not Path(pulled.vmlinuz).exists()
    assert vmlinuz.exists()
    kernels.delete("mine")
    assert vmlinuz.exists()  # registered files stay where they are


async def test_pulled_image_boots_with_its_default_or_chosen_kernel(env: Env,
                                                                    tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    image = await env.services.images.pull("debian:bookworm", events.append)
    assert image.name == "debian-bookworm-oci"  # never shadows the catalog image
    assert image.kernel == "" and image.kernel_name == "generic-6.1"
    vm = await env.services.vms.create(name="a", image=image.name, vcpu=None, memory_mib=None,
                                       disk_size=None, start=True, progress=events.append)
    launched = env.hypervisor.launched[-1]
    assert launched.kernel.name == "vmlinuz" and "generic-6.1" in str(launched.kernel)
    assert vm.kernel == ""
    # The kernel is in use by the image: it cannot be deleted.
    kernels = env.services.kernels
    assert kernels is not None
    with pytest.raises(ResourceBusy):
        kernels.delete("generic-6.1")
    vmlinuz = tmp_path / "other"
    vmlinuz.write_bytes(b"k")
    kernels.register("other", str(vmlinuz), None)
    await env.services.vms.create(name="b", image=image.name, vcpu=None, memory_mib=None,
                                  disk_size=None, start=True, kernel="other")
    assert env.hypervisor.launched[-1].kernel == vmlinuz
    with pytest.raises(KernelNotFound):
        await env.services.vms.create(name="c", image=image.name, vcpu=None, memory_mib=None,
                                      disk_size=None, start=False, kernel="missing")


async def test_pull_without_sshd_warns_about_nat(env: Env) -> None:
    from banger.host.ocipull import FakeImagePuller

    puller = env.services.adapters.image_puller
    assert isinstance(puller, FakeImagePuller)
    puller.has_sshd = False
    events: list[ProgressEvent] = []
    image = await env.services.images.pull("127.0.0.1:5000/x/alpine:3", events.append,
                                           as_name="alp")
    assert image.ssh_on_first_boot and image.name == "alp"
    assert puller.calls[-1]["max_bytes"] >= 1 << 30  # type: ignore[operator]
    created: list[ProgressEvent] = []
    await env.services.vms.create(name="d", image="alp", vcpu=None, memory_mib=None,
                                  disk_size=None, start=False, progress=created.append)
    assert any("--nat" in e.message for e in created)


async def _pull_without_sshd(env: Env) -> None:
    from banger.host.ocipull import FakeImagePuller

    puller = env.services.adapters.image_puller
    assert isinstance(puller, FakeImagePuller)
    puller.has_sshd = False
    await env.services.images.pull("127.0.0.1:5000/x/alpine:3", no_progress, as_name="alp")


async def test_first_boot_ssh_install_failure_ends_the_wait_at_once(env: Env) -> None:
    await _pull_without_sshd(env)
    env.hypervisor.console = (
        b"[ 20.1] banger-install-ssh[9]: banger: this image has no openssh-server; installing\n"
        b"banger: FAILED to install openssh-server: no route to a package mirror?\r\n"
    )
    env.probe.hang = True  # sshd never answers: only the console can end the wait
    with pytest.raises(GuestSetupFailed) as failed:
        await env.services.vms.create(name="d", image="alp", vcpu=None, memory_mib=None,
                                      disk_size=None, start=True)
    assert failed.value.message == (
        "d: FAILED to install openssh-server: no route to a package mirror?"
    )
    assert "banger vm logs d" in failed.value.hint and "--nat" in failed.value.hint
    vm = env.services.vms.get("d")  # kept for `vm logs`
    assert vm.state == VMState.ERROR and "FAILED" in vm.last_error
    assert env.hypervisor.is_running(vm.pid, Path(vm.dir))


async def test_first_boot_ssh_install_success_and_timeouts(env: Env) -> None:
    await _pull_without_sshd(env)
    env.hypervisor.console = b"banger: openssh-server installed; ssh.service started\n"
    vm = await env.services.vms.create(name="ok", image="alp", vcpu=None, memory_mib=None,
                                       disk_size=None, start=True, nat=True)
    assert vm.state == VMState.RUNNING
    env.hypervisor.console = b""
    env.probe.outcome = SSHTimeout("ssh to 172.16.0.3 not ready after 180s")
    for name, nat in (("slow", False), ("slownat", True)):
        with pytest.raises(SSHTimeout) as timeout:
            await env.services.vms.create(name=name, image="alp", vcpu=None,
                                          memory_mib=None, disk_size=None, start=True, nat=nat)
        # Without NAT the timeout says what is most likely missing.
        assert ("create the VM with --nat" in timeout.value.hint) is not nat
