"""Composition: the services of one daemon, wired to real or fake adapters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from banger.core.config import Config
from banger.core.errors import BangerError, ConfigError, MissingTool
from banger.core.models import Check
from banger.core.paths import Paths
from banger.core.sizing import size_defaults
from banger.daemon import doctor
from banger.daemon.images import CATALOG, ImageService
from banger.daemon.network import HostNetwork
from banger.daemon.store import Store
from banger.daemon.vms import Machine, VMService
from banger.host import hostinfo
from banger.host.disks import DiskAdapter
from banger.host.hostinfo import AccelChoice, KVMFacts
from banger.host.imagebuild import ImageBuilder
from banger.host.network import HostNetworkAdapter
from banger.host.ssh import GuestProbe, KeyMaker
from banger.host.vmm.base import Hypervisor


@dataclass
class Adapters:
    network: HostNetworkAdapter
    disks: DiskAdapter
    hypervisor: Hypervisor
    keys: KeyMaker
    probe: GuestProbe
    image_builder: ImageBuilder
    apt_sources: Callable[[str], list[str]]
    kvm: KVMFacts
    host_cpus: int
    host_memory: int


@dataclass
class Services:
    paths: Paths
    config: Config
    store: Store
    images: ImageService
    network: HostNetwork
    vms: VMService
    machine: Machine
    accel: AccelChoice
    adapters: Adapters

    def doctor(self) -> list[Check]:
        def apt_ok() -> str | None:
            try:
                self.adapters.apt_sources("bookworm")
            except BangerError as exc:
                return exc.message
            return None

        name = self.config.default_image_name
        return doctor.run_checks(
            config=self.config,
            state_dir=self.paths.state_dir,
            facts=self.adapters.kvm,
            accel=self.accel,
            sizes=self.vms.size_defaults,
            default_image_local=self.store.get_image(name) is not None,
            default_image_in_catalog=name in CATALOG,
            apt_sources_ok=apt_ok,
        )


def client_key_path(paths: Paths, config: Config) -> Path:
    if config.ssh_key_path:
        key = Path(config.ssh_key_path).expanduser()
        if not key.is_file() or not key.with_name(key.name + ".pub").is_file():
            raise ConfigError(
                f"ssh_key_path {key} needs both the key and {key.name}.pub",
                hint="point ssh_key_path at an existing key pair, or unset it",
            )
        return key
    return paths.default_ssh_key


def build_services(paths: Paths, config: Config, adapters: Adapters) -> Services:
    store = Store(paths.db)
    accel = hostinfo.choose_accel(config.accel, adapters.kvm)
    if config.backend == "firecracker":
        raise ConfigError(
            "backend = \"firecracker\" is not available yet",
            hint="use backend = \"auto\" or \"qemu\"",
        )

    def preflight() -> None:
        if hostinfo.which(config.qemu_bin) is None:
            raise MissingTool(
                f"{config.qemu_bin} not found",
                hint="apt-get install qemu-system-x86 (or set qemu_bin in config)",
            )

    machine = Machine(
        backend="qemu", accel=accel.accel, tsc_khz=hostinfo.tsc_khz(), preflight=preflight
    )
    network = HostNetwork(config, adapters.network, store)
    vms_holder: list[VMService] = []
    images = ImageService(
        store, paths.images_dir, adapters.image_builder, adapters.apt_sources,
        lambda name: vms_holder[0].images_in_use(name),
    )
    vms = VMService(
        config=config,
        store=store,
        vms_dir=paths.vms_dir,
        images=images,
        network=network,
        disks=adapters.disks,
        hypervisor=adapters.hypervisor,
        keys=adapters.keys,
        probe=adapters.probe,
        machine=machine,
        client_key=client_key_path(paths, config),
        known_hosts=paths.known_hosts,
        size_defaults=size_defaults(config.vm_defaults, adapters.host_cpus, adapters.host_memory),
    )
    vms_holder.append(vms)
    return Services(paths, config, store, images, network, vms, machine, accel, adapters)
