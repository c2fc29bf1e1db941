"""Backend selection in the daemon: the config default, `vm create --backend`, each VM kept on
its own backend for its whole life, and what doctor says about Firecracker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from banger.core.config import Config
from banger.core.errors import ConfigError, InvalidInput, MissingTool
from banger.daemon.services import Adapters, Services, build_services
from banger.host import hostinfo
from banger.host.hostinfo import KVMFacts
from tests.support.daemon_env import APT_SOURCES, NO_KVM, make_paths
from tests.support.fakes import FakeHypervisor, FakeKeyMaker, FakeProbe, fake_vm_follower_adapters
from tests.support.host_fakes import FakeDisks, FakeImageBuilder, FakeNetwork

REAL_KVM = KVMFacts(device=True, usable=True, pvm=False, vendor_module=True, cpu_flag=True)


class FakeFirecracker(FakeHypervisor):
    name = "firecracker"

    def __init__(self) -> None:
        super().__init__()
        self.roots: list[tuple[Path, Path, int]] = []

    async def prepare_root(self, base: Path, vm_dir: Path, size_bytes: int) -> None:
        self.roots.append((base, vm_dir, size_bytes))

    async def clone_root(self, source_dir: Path, vm_dir: Path) -> None:
        raise AssertionError("no warm templates in these tests")


class Setup:
    def __init__(self, root: Path, config: Config, kvm: KVMFacts = NO_KVM) -> None:
        self.qemu, self.firecracker, self.disks = FakeHypervisor(), FakeFirecracker(), FakeDisks()
        self.paths = make_paths(root)
        self.adapters = Adapters(
            network=FakeNetwork(), disks=self.disks, hypervisor=self.qemu,
            keys=FakeKeyMaker(), probe=FakeProbe(), image_builder=FakeImageBuilder(),
            apt_sources=lambda suite: list(APT_SOURCES), kvm=kvm, host_cpus=8,
            host_memory=16 * 1024**3, vm_followers=fake_vm_follower_adapters(),
            firecracker=self.firecracker,
        )
        self.config = config

    async def services(self) -> Services:
        services = build_services(self.paths, self.config, self.adapters)
        await self.adapters.keys.make_ed25519(self.paths.default_ssh_key, "banger")
        return services


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    yield Setup(tmp_path, Config())


async def test_auto_without_real_kvm_stays_on_qemu(setup: Setup) -> None:
    services = await setup.services()
    assert services.profile.backend == "qemu"
    vm = await services.vms.create(name="a", image=None, vcpu=None, memory_mib=None,
                                   disk_size=None, start=True)
    assert vm.backend == "qemu" and setup.qemu.launched and not setup.firecracker.launched
    assert setup.disks.overlays  # the qcow2 overlay
    services.store.close()


async def test_auto_with_firecracker_and_real_kvm_picks_it(tmp_path: Path) -> None:
    setup = Setup(tmp_path, Config(), kvm=REAL_KVM)  # hostinfo.which finds every tool here
    services = await setup.services()
    assert services.profile.backend == "firecracker"
    services.store.close()


async def test_create_backend_firecracker_uses_it_for_the_vms_whole_life(setup: Setup) -> None:
    services = await setup.services()
    vm = await services.vms.create(name="fc", image=None, vcpu=None, memory_mib=None,
                                   disk_size="4G", start=True, backend="firecracker")
    assert (vm.backend, vm.accel) == ("firecracker", "kvm")
    [(base, vm_dir, size)] = setup.firecracker.roots
    assert vm_dir == Path(vm.dir) and size == 4 * 1024**3 and base.name == "rootfs.ext4"
    assert not setup.disks.overlays  # no qcow2 for a Firecracker VM
    [spec] = setup.firecracker.launched
    assert "tsc_early_khz" not in spec.cmdline  # KVM: no TSC hint
    assert not setup.qemu.launched
    await services.vms.stop("fc")
    assert setup.firecracker.stopped and not setup.qemu.stopped
    await services.vms.start("fc")
    assert len(setup.firecracker.launched) == 2
    await services.vms.delete("fc", force=True)
    services.store.close()


async def test_config_backend_firecracker_is_the_default(tmp_path: Path) -> None:
    setup = Setup(tmp_path, Config(backend="firecracker"))
    services = await setup.services()
    vm = await services.vms.create(name="fc", image=None, vcpu=None, memory_mib=None,
                                   disk_size=None, start=True)
    assert vm.backend == "firecracker"
    qemu_vm = await services.vms.create(name="q", image=None, vcpu=None, memory_mib=None,
                                        disk_size=None, start=True, backend="qemu")
    assert qemu_vm.backend == "qemu" and len(setup.qemu.launched) == 1
    services.store.close()


async def test_unknown_or_missing_backends_are_explained(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = await setup.services()
    with pytest.raises(InvalidInput, match="backend 'xen' is not available"):
        await services.vms.create(name="x", image=None, vcpu=None, memory_mib=None,
                                  disk_size=None, start=True, backend="xen")
    monkeypatch.setattr(hostinfo, "which", lambda tool: None)
    with pytest.raises(MissingTool, match="firecracker not found"):
        await services.vms.create(name="x", image=None, vcpu=None, memory_mib=None,
                                  disk_size=None, start=True, backend="firecracker")
    services.store.close()


def test_config_firecracker_without_the_adapter_is_a_config_error(tmp_path: Path) -> None:
    setup = Setup(tmp_path, Config(backend="firecracker"))
    setup.adapters.firecracker = None
    with pytest.raises(ConfigError, match="not available in this daemon"):
        build_services(setup.paths, setup.config, setup.adapters)


async def test_doctor_reports_firecracker_its_version_and_kvm(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = await setup.services()
    monkeypatch.setattr("banger.daemon.backends.firecracker_version",
                        lambda binary: "Firecracker v1.16.1")
    checks = {c.name: c for c in services.doctor()}
    assert checks["backend"].detail.startswith("qemu: firecracker found, but no hardware KVM")
    assert checks["firecracker"].detail == "/usr/bin/firecracker: Firecracker v1.16.1"
    assert checks["kvm for firecracker"].status == "warn"
    monkeypatch.setattr(hostinfo, "which", lambda tool: None)
    checks = {c.name: c for c in services.doctor()}
    assert checks["firecracker"].status == "warn" and not checks["firecracker"].required
    services.store.close()
