"""bangerd: one daemon per user, found through its Unix socket (mode 0600)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import pwd
import signal
import socket
import sys
from pathlib import Path
from typing import TextIO

from aiohttp import web

from banger.core.config import Config, parse_config
from banger.core.errors import BangerError
from banger.core.netmode import ROOT_BRIDGE, ModeChoice, choose_network_mode
from banger.core.paths import Paths, paths_from_env, refuse_foreign_dirs
from banger.core.usernet import UserNetwork
from banger.daemon.api import make_app
from banger.daemon.leftovers import sweep_half_made
from banger.daemon.logs import (
    redirect_raw_output,
    route_crashes_to_log,
    route_warnings_to_log,
    setup_logging,
)
from banger.daemon.peers import serving_only
from banger.daemon.services import Adapters, Services, build_services, client_key_path
from banger.daemon.templates import remove_old_layout
from banger.daemon.vmfollowers import real_vm_follower_adapters

log = logging.getLogger("banger.daemon")

EXIT_ALREADY_RUNNING = 3
EXIT_STARTUP_ERROR = 2


def load_config(paths: Paths) -> Config:
    try:
        text = paths.config_file.read_text()
    except FileNotFoundError:
        return Config()
    return parse_config(text, source=str(paths.config_file))


def _acquire_lock(path: Path) -> TextIO | None:
    handle = open(path, "a+")  # noqa: SIM115 - held open for the daemon's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _bind_socket(path: Path) -> socket.socket:
    """Create the API socket ourselves so it is 0600 from the first instant."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(64)
    sock.setblocking(False)
    return sock


def network_mode(config: Config) -> tuple[Config, ModeChoice, UserNetwork | None]:
    """Bridge for root; for an ordinary user, the pool root set up for them (its bridge and
    subnet replace the config's), else user-mode networking."""
    from banger.host.usernet import read_user_network

    euid = os.geteuid()
    pool = None if euid == 0 else read_user_network(pwd.getpwuid(euid).pw_name)
    choice = choose_network_mode(euid, has_setup=pool is not None)
    if pool is not None:
        config = config.model_copy(update={
            "bridge_name": pool.bridge, "bridge_ip": pool.gateway, "cidr": pool.cidr,
        })
    return config, choice, pool


def real_adapters(
    config: Config, paths: Paths, mode: ModeChoice | None = None,
    pool: UserNetwork | None = None,
) -> Adapters:
    from banger.core.aptsources import archive_for_suite
    from banger.core.confine import uid_range
    from banger.host import hostinfo
    from banger.host.agent import SerialAgentChannel, VsockAgentChannel
    from banger.host.aptconfig import host_apt_sources, read_host_sources
    from banger.host.cgroups import detect_cgroups
    from banger.host.disks import HostDisks
    from banger.host.imagebuild import DebianImageBuilder
    from banger.host.kernelpull import DebianKernelFetcher
    from banger.host.network import IPRoute2Network
    from banger.host.ocipull import OCIPuller
    from banger.host.poolnet import PoolLinks
    from banger.host.processes import SubprocessRunner
    from banger.host.ssh import AsyncSSHProbe, SSHKeygen
    from banger.host.vmm.firecracker import FirecrackerHypervisor
    from banger.host.vmm.launch import Confinement
    from banger.host.vmm.qemu import QemuHypervisor
    from banger.host.vmmuser import ClaimedVMMUids

    runner = SubprocessRunner()
    user = pwd.getpwuid(os.geteuid()).pw_name
    confinement = Confinement(detect_cgroups(), ClaimedVMMUids(uid_range(config.vmm_uids)))
    return Adapters(
        network=IPRoute2Network(runner) if pool is None else PoolLinks(pool),
        disks=HostDisks(runner),
        hypervisor=QemuHypervisor(config.qemu_bin, confinement),
        keys=SSHKeygen(runner),
        probe=AsyncSSHProbe(),
        image_builder=DebianImageBuilder(),
        apt_sources=lambda suite: host_apt_sources(suite, config.debian_mirror),
        kvm=hostinfo.kvm_facts(),
        host_cpus=hostinfo.cpu_count(),
        host_memory=hostinfo.memory_bytes(),
        vm_followers=real_vm_follower_adapters(pool),
        firecracker=FirecrackerHypervisor(
            config.firecracker_bin, paths.state_dir / "firecracker", runner=runner,
            confinement=confinement, jailer_bin=config.jailer_bin,
            chroot_base=Path(config.firecracker_chroot_base)
            if config.firecracker_chroot_base else None,
        ),
        image_puller=OCIPuller(
            paths.cache_dir / "oci", insecure=tuple(config.insecure_registries)
        ),
        kernel_fetcher=DebianKernelFetcher(paths.cache_dir),
        debian_archive=lambda suite: archive_for_suite(
            suite, mirror=config.debian_mirror, host_sources=read_host_sources()
        ),
        agent=SerialAgentChannel(),
        vmm_version=lambda: hostinfo.vmm_version(config.qemu_bin),
        firecracker_agent=VsockAgentChannel(),
        firecracker_version=lambda: hostinfo.vmm_version(
            config.firecracker_bin or "firecracker"
        ),
        network_mode=mode or ROOT_BRIDGE,
        pool=pool,
        user=user,
    )


async def _ensure_client_key(services: Services) -> None:
    key = client_key_path(services.paths, services.config)
    if not key.exists():
        services.paths.ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        await services.adapters.keys.make_ed25519(key, "banger")


async def serve(paths: Paths, services: Services) -> None:
    await _ensure_client_key(services)
    sweep_half_made(paths, (vm.id for vm in services.store.list_vms()))
    await services.supervisor.reconcile()
    remove_old_layout(services.paths.state_dir / "templates")
    for templates in services.templates.values():
        templates.clean_leftovers()
    await services.vm_followers.start()
    stop = asyncio.Event()
    app = make_app(services, stop.set)
    app.middlewares.insert(0, serving_only(os.geteuid()))
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    sock = _bind_socket(paths.socket)
    site = web.SockSite(runner, sock)
    await site.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    supervisor = asyncio.create_task(services.supervisor.supervise())
    log.info("bangerd listening on %s (pid %d)", paths.socket, os.getpid())
    await stop.wait()
    log.info("bangerd shutting down; running VMs keep running")
    supervisor.cancel()
    for templates in services.templates.values():
        await templates.close()
    await services.vm_followers.close()
    with contextlib.suppress(FileNotFoundError):
        paths.socket.unlink()
    await runner.cleanup()
    services.store.close()


def _owner_of(path: Path) -> int | None:
    try:
        return os.lstat(path).st_uid
    except FileNotFoundError:
        return None


def main() -> None:
    paths = paths_from_env(os.environ)
    try:
        refuse_foreign_dirs(paths, os.geteuid(), _owner_of)
    except BangerError as exc:
        # Before the log exists (it would be in those directories): the CLI shows the line.
        print(f"error: {exc.message} (hint: {exc.hint})", file=sys.stderr)
        sys.exit(EXIT_STARTUP_ERROR)
    for directory in (paths.state_dir, paths.config_dir, paths.cache_dir, paths.runtime_dir):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = _acquire_lock(paths.daemon_lock)
    if lock is None:
        print("bangerd is already running", file=sys.stderr)
        sys.exit(EXIT_ALREADY_RUNNING)
    redirect_raw_output(paths.daemon_stderr)
    setup_logging(paths.daemon_log, "info")
    route_warnings_to_log()
    route_crashes_to_log()
    log.info("bangerd starting (pid %d); raw output, if any, goes to %s",
             os.getpid(), paths.daemon_stderr)
    try:
        config = load_config(paths)
        setup_logging(paths.daemon_log, config.log_level)
        config, mode, pool = network_mode(config)
        log.info("network mode %s: %s", mode.mode.value, mode.reason)
        services = build_services(paths, config, real_adapters(config, paths, mode, pool))
    except BangerError as exc:
        # The CLI reads this line back to explain why the daemon did not come up.
        log.error(exc.message, extra={"code": exc.code, "hint": exc.hint})
        sys.exit(EXIT_STARTUP_ERROR)
    asyncio.run(serve(paths, services))
    lock.close()


if __name__ == "__main__":
    main()
