"""`banger doctor`: each host requirement as ok/warn/fail with a hint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from banger.core.config import Config
from banger.core.models import Check
from banger.core.netmode import ModeChoice, NetworkMode, setup_command
from banger.core.sizing import SizeDefaults
from banger.core.units import GIB, format_size
from banger.core.usernet import UserNetwork
from banger.daemon.backends import backend_checks
from banger.host import hostinfo
from banger.host.hostinfo import AccelChoice, KVMFacts


def run_checks(
    *,
    config: Config,
    state_dir: Path,
    facts: KVMFacts,
    accel: AccelChoice,
    sizes: SizeDefaults,
    default_image_local: bool,
    default_image_in_catalog: bool,
    apt_sources_ok: Callable[[], str | None],
    network_mode: NetworkMode = NetworkMode.BRIDGE,
    user: str = "root",
) -> list[Check]:
    checks: list[Check] = []

    def tool(name: str, binary: str, hint: str, *, required: bool = True) -> str | None:
        found = hostinfo.which(binary)
        checks.append(Check(
            name, "ok" if found else ("fail" if required else "warn"),
            found or f"{binary} not found", "" if found else hint, required,
        ))
        return found

    tool("qemu", config.qemu_bin, "apt-get install qemu-system-x86")
    tool("qemu-img", "qemu-img", "apt-get install qemu-utils")
    checks.extend(backend_checks(config, facts))
    kvm_detail = (
        f"/dev/kvm: {'present' if facts.device else 'absent'}"
        f"{', emulated pvm module' if facts.pvm else ''}"
        f"{', hardware virtualisation' if facts.vendor_module or facts.cpu_flag else ''}"
    )
    hardware = (facts.vendor_module or facts.cpu_flag) and not facts.pvm
    if facts.device and hardware and not facts.usable:
        checks.append(Check(
            "accel", "warn", f"{accel.accel}: /dev/kvm is there but {user} cannot open it, "
            "so guests run under TCG (much slower)",
            f"join the group that owns /dev/kvm: {setup_command(user)} does it (then log in "
            "again)", False,
        ))
    elif accel.accel == "kvm" and not facts.real:
        checks.append(Check(
            "accel", "warn", f"kvm ({accel.reason}); {kvm_detail}",
            "this KVM is not hardware KVM: accel = \"tcg\" is usually faster", False,
        ))
    else:
        checks.append(Check("accel", "ok", f"{accel.accel}: {accel.reason}; {kvm_detail}"))
    tool("mkfs.ext4", "mkfs.ext4", "apt-get install e2fsprogs")
    tool("resize2fs", "resize2fs", "apt-get install e2fsprogs")
    tool("ssh", "ssh", "apt-get install openssh-client")
    tool("ssh-keygen", "ssh-keygen", "apt-get install openssh-client")
    if network_mode == NetworkMode.BRIDGE:
        tool("ip", "ip", "apt-get install iproute2")  # the bridge and TAPs
    free = hostinfo.free_bytes(state_dir)
    status = "ok" if free >= 10 * GIB else ("warn" if free >= 2 * GIB else "fail")
    checks.append(Check(
        "free disk", status, f"{format_size(free)} free under {state_dir}",
        "" if status == "ok" else "images need ~2G, each VM's disks grow as the guest writes",
        status == "fail",
    ))
    mmdebstrap = tool(
        "mmdebstrap", "mmdebstrap", "apt-get install mmdebstrap (needed to build images)",
        required=not default_image_local,
    )
    if default_image_local:
        checks.append(Check("default image", "ok", f"{config.default_image_name} is local"))
    elif default_image_in_catalog:
        problem = apt_sources_ok()
        if mmdebstrap and problem is None:
            checks.append(Check(
                "default image", "ok",
                f"{config.default_image_name} is built on first use (~1 min)",
            ))
        else:
            checks.append(Check(
                "default image", "fail",
                f"{config.default_image_name} cannot be built: {problem or 'no mmdebstrap'}",
                "install mmdebstrap and set debian_mirror in config if apt has no Debian source",
            ))
    else:
        checks.append(Check(
            "default image", "fail", f"{config.default_image_name} is not registered",
            "banger image register --name ... or set default_image_name",
        ))
    tsc = hostinfo.tsc_khz()
    if accel.accel == "tcg":
        checks.append(Check(
            "tsc rate", "ok" if tsc else "warn",
            f"{tsc} kHz passed as tsc_early_khz" if tsc else "unknown host TSC rate",
            "" if tsc else "boots under TCG may hang at TSC calibration", False,
        ))
    checks.append(Check(
        "vm defaults", "ok",
        f"{sizes.vcpu.value} vCPU ({sizes.vcpu.source}), "
        f"{sizes.memory_mib.value} MiB ({sizes.memory_mib.source}), "
        f"{format_size(sizes.disk_size_bytes.value)} disk ({sizes.disk_size_bytes.source})",
        required=False,
    ))
    return checks


def confinement_check(
    config: Config, cgroups: str | None, is_root: bool, host_ids: list[int] | None = None
) -> Check:
    """How QEMU VMMs are confined: its sandbox always; a uid of their own and a cgroup only
    under a root daemon. `cgroups`: the cgroup version in use, None if none; `host_ids`:
    users or groups of the host inside `vmm_uids` (never handed to a VMM, but a sign the
    range was badly chosen)."""
    if not is_root:
        return Check("confinement", "warn", "QEMU runs in its seccomp sandbox, as you, "
                     "without a cgroup", "run bangerd as root to confine VMMs further", False)
    missing = [what for what, absent in (
        ("a uid per VM (vmm_uids = \"\")", not config.vmm_uids),
        ("cgroups (no cgroup hierarchy with the memory controller)", cgroups is None),
    ) if absent]
    if missing:
        return Check("confinement", "warn", f"QEMU runs in its seccomp sandbox, without "
                     f"{' and '.join(missing)}", "set vmm_uids to a range of unused ids", False)
    if host_ids:
        shown = ", ".join(str(i) for i in host_ids[:5])
        return Check("confinement", "warn", f"vmm_uids {config.vmm_uids} holds ids the host "
                     f"uses ({shown}); banger skips them", "move vmm_uids to unused ids", False)
    return Check("confinement", "ok", f"QEMU runs in its seccomp sandbox as a uid of its own "
                 f"per VM ({config.vmm_uids}), in a cgroup ({cgroups}) per VM")


def network_mode_check(choice: ModeChoice, pool: UserNetwork | None, user: str) -> Check:
    """How guests get a network (the mode the daemon chose at start-up), and what an
    ordinary user can ask root for."""
    if choice.mode is NetworkMode.POOL and pool is not None:
        with_nat = sum(s.nat for s in pool.slots)
        return Check("network mode", "ok", f"pool: {choice.reason}; bridge {pool.bridge} "
                     f"({pool.cidr}), {len(pool.slots)} TAPs ({with_nat} with NAT), .vm DNS "
                     f"on {pool.gateway}:53 (-> :{pool.dns_port})", required=False)
    if choice.mode is NetworkMode.USER:
        return Check(
            "network mode", "warn",
            f"user-mode networking ({choice.reason}): each guest reached through a 127.0.0.1 "
            "port, no .vm DNS names, a VM has --nat or no network (no egress allowlists, "
            "no network groups), no Firecracker",
            f"for full networking, ask root once: {setup_command(user)}", False,
        )
    return Check("network mode", "ok", f"{choice.mode.value}: {choice.reason}; banger's "
                 "bridge, TAPs, nftables rules and .vm DNS", required=False)
