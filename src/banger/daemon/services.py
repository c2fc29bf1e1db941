"""Composition: the services of one daemon, wired to real or fake adapters."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from banger.core.backends import BackendChoice
from banger.core.config import Config
from banger.core.confine import uid_range
from banger.core.errors import BangerError, ConfigError, MissingTool, Unsupported
from banger.core.models import Check
from banger.core.netmode import ROOT_BRIDGE, ModeChoice, NetworkMode, setup_command
from banger.core.paths import Paths
from banger.core.sizing import size_defaults
from banger.core.units import parse_size
from banger.core.usernet import UserNetwork
from banger.daemon import doctor
from banger.daemon.backends import default_backend, firecracker_profile
from banger.daemon.consoles import ConsoleKeeper
from banger.daemon.guestexec import GuestExec
from banger.daemon.guestprocs import ProcessTable
from banger.daemon.imagebundle import ImageBundles
from banger.daemon.images import CATALOG, ImageService
from banger.daemon.kernels import KernelService
from banger.daemon.network import GuestNetwork, HostNetwork, SlirpNetwork
from banger.daemon.ociimages import OCIImages
from banger.daemon.sshconfig import SSHConfigFile
from banger.daemon.store import Store
from banger.daemon.supervisor import Supervisor
from banger.daemon.templates import TemplateService
from banger.daemon.vmboot import VMBoot
from banger.daemon.vmfollowers import VMFollowerAdapters, VMFollowers, build_vm_followers
from banger.daemon.vmrecords import BackendProfile, VMRecords
from banger.daemon.vms import VMService
from banger.host import hostinfo
from banger.host.agent import AgentChannel
from banger.host.bundle import Codec, ZstdCodec
from banger.host.disks import DiskAdapter
from banger.host.hostinfo import AccelChoice, KVMFacts
from banger.host.imagebuild import ImageBuilder
from banger.host.kernelpull import FetchedKernel, KernelFetcher
from banger.host.network import HostLoopbackPorts, HostNetworkAdapter, LoopbackPorts
from banger.host.ocipull import ImagePuller
from banger.host.ssh import GuestProbe, KeyMaker
from banger.host.vmm.base import Hypervisor
from banger.host.vmmuser import host_ids_in


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
    vm_followers: VMFollowerAdapters
    firecracker: Hypervisor | None = None
    # Images from OCI registries and kernels from the Debian archive (None: unavailable).
    image_puller: ImagePuller | None = None
    kernel_fetcher: KernelFetcher | None = None
    debian_archive: Callable[[str], str] | None = None
    bundle_codec: Codec = field(default_factory=ZstdCodec)  # image export/import
    # Warm templates: the guest agent's channel and the VMM's version of each backend (None:
    # no templates on that backend).
    agent: AgentChannel | None = None
    vmm_version: Callable[[], str] | None = None
    firecracker_agent: AgentChannel | None = None
    firecracker_version: Callable[[], str] | None = None
    # How guests get a network (core/netmode.py), for the daemon's `user`: the pool root
    # set up, in pool mode; user-mode networking forwards loopback ports to them.
    network_mode: ModeChoice = ROOT_BRIDGE
    pool: UserNetwork | None = None
    user: str = "root"
    loopback_ports: LoopbackPorts = field(default_factory=HostLoopbackPorts)


@dataclass
class Services:
    paths: Paths
    config: Config
    store: Store
    images: ImageService
    network: GuestNetwork
    vms: VMService
    profile: BackendProfile
    accel: AccelChoice
    adapters: Adapters
    vm_followers: VMFollowers
    supervisor: Supervisor
    kernels: KernelService | None = None
    bundles: ImageBundles | None = None
    # Warm templates, by backend (only backends that can make them).
    templates: dict[str, TemplateService] = field(default_factory=dict)
    guest_exec: GuestExec = field(init=False)
    guest_processes: ProcessTable = field(init=False)

    def default_templates(self) -> TemplateService | None:
        """The templates of the default backend: what `image warm` makes unless told."""
        return self.templates.get(self.profile.backend)

    def templates_for(self, backend: str | None) -> TemplateService:
        """The warm templates of `backend` (None: the default one), or why there are none."""
        name = backend or self.profile.backend
        found = self.templates.get(name)
        if found is None:
            raise MissingTool(
                f"warm templates are not available for the {name} backend in this daemon",
                hint="see `banger doctor` for the backends it runs",
            )
        return found

    def doctor(self) -> list[Check]:
        def apt_ok() -> str | None:
            try:
                self.adapters.apt_sources("bookworm")
            except BangerError as exc:
                return exc.message
            return None

        name = self.config.default_image_name
        cgroups = self.adapters.vm_followers.cgroups
        return [doctor.network_mode_check(self.adapters.network_mode, self.adapters.pool,
                                          self.adapters.user),
                *doctor.run_checks(
            config=self.config,
            state_dir=self.paths.state_dir,
            facts=self.adapters.kvm,
            accel=self.accel,
            sizes=self.vms.size_defaults,
            default_image_local=self.store.get_image(name) is not None,
            default_image_in_catalog=name in CATALOG,
            apt_sources_ok=apt_ok,
            network_mode=self.network.mode, user=self.adapters.user,
        ), doctor.confinement_check(
            self.config, cgroups.version if cgroups else None, os.geteuid() == 0,
            host_ids_in(uid_range(self.config.vmm_uids)),
        ), *self.vm_followers.checks()]


def _no_user_mode_firecracker(user: str) -> Callable[[], None]:
    def preflight() -> None:
        raise Unsupported(
            "Firecracker has no user-mode networking, which this daemon uses (not root, no "
            "setup for this user)",
            hint=f"use --backend qemu, or run once: {setup_command(user)}",
        )

    return preflight


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

    def preflight() -> None:
        if hostinfo.which(config.qemu_bin) is None:
            raise MissingTool(
                f"{config.qemu_bin} not found",
                hint="apt-get install qemu-system-x86 (or set qemu_bin in config)",
            )

    qemu = BackendProfile(
        backend="qemu", accel=accel.accel, tsc_khz=hostinfo.tsc_khz(), preflight=preflight
    )
    backends: dict[str, tuple[BackendProfile, Hypervisor]] = {"qemu": (qemu, adapters.hypervisor)}
    user_mode = adapters.network_mode.mode is NetworkMode.USER
    if adapters.firecracker is not None:
        firecracker = firecracker_profile(config)
        if user_mode:
            firecracker = replace(firecracker, preflight=_no_user_mode_firecracker(adapters.user))
        backends["firecracker"] = (firecracker, adapters.firecracker)
    choice = default_backend(config, adapters.kvm)
    if choice.name not in backends or (
        # Not chosen in config: the default falls back to QEMU, which has user-mode net.
        user_mode and choice.name == "firecracker" and config.backend != choice.name
    ):
        if config.backend == choice.name:
            raise ConfigError(f"backend = \"{choice.name}\" is not available in this daemon")
        choice = BackendChoice("qemu", "the default")
    profile, hypervisor = backends[choice.name]
    network: GuestNetwork = (
        SlirpNetwork(adapters.loopback_ports, adapters.user) if user_mode
        else HostNetwork(config, adapters.network, store, mode=adapters.network_mode.mode,
                         pool=adapters.pool)
    )

    def images_in_use(image: str) -> list[str]:
        return [vm.name for vm in store.list_vms() if vm.image == image]

    kernels = _kernel_service(paths, config, store, adapters)
    oci = None if adapters.image_puller is None else OCIImages(
        store, paths.images_dir, adapters.image_puller, catalog=lambda n: n in CATALOG,
        images_in_use=images_in_use,
        default_kernel=config.default_kernel,
        max_bytes=parse_size(config.image_max_size) if config.image_max_size else None,
    )
    images = ImageService(
        store, paths.images_dir, adapters.image_builder, adapters.apt_sources,
        images_in_use, oci,
    )
    sizes = size_defaults(config.vm_defaults, adapters.host_cpus, adapters.host_memory)
    templates: dict[str, TemplateService] = {}
    for name, agent, version in (
        ("qemu", adapters.agent, adapters.vmm_version),
        ("firecracker", adapters.firecracker_agent, adapters.firecracker_version),
    ):
        if name not in backends or agent is None or version is None:
            continue
        if user_mode and name == "firecracker":
            continue  # it cannot start VMs here at all
        backend_profile, backend_hypervisor = backends[name]
        templates[name] = TemplateService(
            backend=name,
            templates_dir=paths.state_dir / "templates" / name,
            config=config,
            images=images,
            kernels=kernels,
            network=network,
            disks=adapters.disks,
            hypervisor=backend_hypervisor,
            agent=agent,
            accel=backend_profile.accel,
            tsc_khz=backend_profile.tsc_khz,
            default_size=lambda: (sizes.vcpu.value, sizes.memory_mib.value),
            vmm_version=version,
            disk_size_bytes=sizes.disk_size_bytes.value,
        )
    records = VMRecords(
        store=store, network=network, profile=profile, hypervisor=hypervisor,
        known_hosts=paths.known_hosts, backends=backends,
    )
    boot = VMBoot(
        records=records,
        config=config,
        images=images,
        network=network,
        disks=adapters.disks,
        keys=adapters.keys,
        probe=adapters.probe,
        client_key=client_key_path(paths, config),
        size_defaults=sizes,
        kernels=kernels,
        templates=templates,
    )
    vms = VMService(
        records=records,
        boot=boot,
        config=config,
        vms_dir=paths.vms_dir,
        images=images,
        network=network,
        disks=adapters.disks,
        client_key=client_key_path(paths, config),
        known_hosts=paths.known_hosts,
        kernels=kernels,
    )
    ssh_config = SSHConfigFile(
        store, paths.ssh_config, identity_file=client_key_path(paths, config),
        known_hosts=paths.known_hosts,
    )
    vms.listeners.append(ssh_config.on_vm_event)
    ssh_config.write()
    vm_followers = build_vm_followers(
        config, store, network, vms, adapters.vm_followers,
        **({"dns_port": adapters.pool.dns_port} if adapters.pool else {}),
    )
    vm_followers.consoles = ConsoleKeeper(
        [(paths.vms_dir, 1), (paths.state_dir / "templates", 2)],
        parse_size(config.console_log_max_size),
    )
    services = Services(
        paths, config, store, images, network, vms, profile, accel, adapters, vm_followers,
        Supervisor(records=records, network=network, vms_dir=paths.vms_dir),
    )
    services.kernels = kernels
    services.bundles = ImageBundles(store, paths.images_dir, adapters.bundle_codec, images.get)
    services.templates = templates
    channels = {name: channel for name, channel in (
        ("qemu", adapters.agent), ("firecracker", adapters.firecracker_agent),
    ) if channel is not None}
    services.guest_exec = GuestExec(vms, records, channels)
    boot.connect_agent = lambda vm, timeout: services.guest_exec.connect(vm, timeout)
    services.guest_processes = ProcessTable(services.guest_exec, vms)
    return services


def _kernel_service(
    paths: Paths, config: Config, store: Store, adapters: Adapters
) -> KernelService:
    fetcher = adapters.kernel_fetcher
    archive = adapters.debian_archive

    def in_use(name: str) -> list[str]:
        users = [f"VM {vm.name}" for vm in store.list_vms() if vm.kernel == name]
        return users + [f"image {i.name}" for i in store.list_images() if i.kernel_name == name]

    def no_fetcher(_: str) -> str:
        raise MissingTool("kernel pull is not available in this daemon")

    return KernelService(
        store, paths.state_dir / "kernels",
        fetcher if fetcher is not None else _NoFetcher(), archive or no_fetcher, in_use,
    )


class _NoFetcher:
    async def fetch(self, **_: object) -> FetchedKernel:
        raise MissingTool("kernel pull is not available in this daemon")
