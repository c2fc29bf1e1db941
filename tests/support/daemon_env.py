"""The daemon's services wired on fakes, as bangerd wires them on real adapters."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from banger.core.config import Config
from banger.core.models import VM, VMState
from banger.core.netmode import ModeChoice, NetworkMode
from banger.core.paths import Paths
from banger.core.usernet import UserNetwork
from banger.daemon.services import Adapters, Services, build_services
from banger.host.hostinfo import KVMFacts
from banger.host.poolnet import SetupRules
from tests.support.fakes import FakeHypervisor, FakeKeyMaker, FakeProbe, fake_vm_follower_adapters
from tests.support.host_fakes import (
    FakeAgentChannel,
    FakeDisks,
    FakeImageBuilder,
    FakeImagePuller,
    FakeKernelFetcher,
    FakeLoopbackPorts,
    FakeNetwork,
    PlainCodec,
)

NO_KVM = KVMFacts(device=False, usable=False, pvm=False, vendor_module=False, cpu_flag=False)
APT_SOURCES = ["deb http://deb.example.test/debian bookworm main"]


@dataclass
class Env:
    services: Services
    paths: Paths
    network: FakeNetwork
    disks: FakeDisks
    hypervisor: FakeHypervisor
    keys: FakeKeyMaker
    probe: FakeProbe
    builder: FakeImageBuilder

    def leftovers(self) -> tuple[list[str], list[str], list[str]]:
        """VM dirs, store rows and TAPs: what a failed operation must not add to."""
        vms_dir = self.paths.vms_dir
        dirs = sorted(p.name for p in vms_dir.iterdir()) if vms_dir.exists() else []
        rows = [vm.name for vm in self.services.store.list_vms()]
        return dirs, rows, sorted(self.network.taps)


def make_paths(root: Path, runtime_dir: Path | None = None) -> Paths:
    return Paths(
        config_dir=root / "config",
        state_dir=root / "state",
        cache_dir=root / "cache",
        runtime_dir=runtime_dir or root / "run",
    )


def make_env(
    root: Path, config: Config | None = None, builder: FakeImageBuilder | None = None,
    runtime_dir: Path | None = None, hypervisor: FakeHypervisor | None = None,
    agent: FakeAgentChannel | None = None, firecracker: FakeHypervisor | None = None,
    firecracker_agent: FakeAgentChannel | None = None,
    network_mode: NetworkMode = NetworkMode.BRIDGE,
    loopback_ports: FakeLoopbackPorts | None = None, pool: UserNetwork | None = None,
) -> Env:
    """Services wired the way bangerd wires them (build_services), on fake adapters.
    `hypervisor` is the QEMU backend, `firecracker` the Firecracker one (if any); with an
    agent channel, the backend makes warm templates. `pool`: an ordinary user's daemon on
    the network root set up (pool mode, root's rules stand)."""
    paths = make_paths(root, runtime_dir)
    network, disks = FakeNetwork(), FakeDisks()
    hypervisor = hypervisor or FakeHypervisor()
    keys, probe = FakeKeyMaker(), FakeProbe()
    builder = builder or FakeImageBuilder()
    adapters = Adapters(
        network=network,
        disks=disks,
        hypervisor=hypervisor,
        keys=keys,
        probe=probe,
        image_builder=builder,
        apt_sources=lambda suite: list(APT_SOURCES),
        kvm=NO_KVM,
        host_cpus=8,
        host_memory=16 * 1024**3,
        vm_followers=fake_vm_follower_adapters(),
        image_puller=FakeImagePuller(),
        kernel_fetcher=FakeKernelFetcher(),
        debian_archive=lambda suite: "http://deb.example.test/debian",
        bundle_codec=PlainCodec(),
        agent=agent,
        vmm_version=(lambda: "QEMU emulator version 7.2.fake") if agent else None,
        firecracker=firecracker,
        firecracker_agent=firecracker_agent,
        firecracker_version=(lambda: "Firecracker v1.16.fake") if firecracker_agent else None,
        network_mode=ModeChoice(network_mode, "the test's choice"),
        user="dev",
        loopback_ports=loopback_ports or FakeLoopbackPorts(),
    )
    config = config or Config()
    if pool is not None:
        adapters.network_mode = ModeChoice(NetworkMode.POOL, "root prepared this user's network")
        adapters.pool = pool
        adapters.vm_followers.nat = SetupRules(pool)
        config = config.model_copy(update={
            "bridge_name": pool.bridge, "bridge_ip": pool.gateway, "cidr": pool.cidr,
        })
    services = build_services(paths, config, adapters)
    return Env(services, paths, network, disks, hypervisor, keys, probe, builder)


async def ready_env(
    root: Path, runtime_dir: Path | None = None, hypervisor: FakeHypervisor | None = None,
) -> Env:
    built = make_env(root, runtime_dir=runtime_dir, hypervisor=hypervisor)
    # What bangerd does at startup: banger's own client key pair.
    await built.keys.make_ed25519(built.paths.default_ssh_key, "banger")
    return built


async def supervise_until_stopped(env: Env, name: str) -> None:
    """Run the VM supervisor (every 10 ms) until it has marked `name` stopped, for 2 s at
    most: the caller asserts the state it expects."""
    supervisor = asyncio.create_task(env.services.supervisor.supervise(interval=0.01))
    try:
        for _ in range(200):
            if env.services.vms.get(name).state == VMState.STOPPED:
                break
            await asyncio.sleep(0.01)
    finally:
        supervisor.cancel()


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
