"""The VMM backends a daemon offers: their launch facts, preflights and doctor lines."""

from __future__ import annotations

import os

from banger.core.backends import BackendChoice, choose_backend
from banger.core.config import Config
from banger.core.errors import MissingTool
from banger.core.models import Check
from banger.daemon.vmrecords import BackendProfile
from banger.host.hostinfo import KVMFacts
from banger.host.vmm.firecracker import find_firecracker, firecracker_version
from banger.host.vmm.jailer import find_jailer


def default_backend(config: Config, kvm: KVMFacts) -> BackendChoice:
    return choose_backend(
        config.backend,
        firecracker_found=find_firecracker(config.firecracker_bin) is not None,
        kvm_real=kvm.real,
    )


def firecracker_profile(config: Config) -> BackendProfile:
    def preflight() -> None:
        if find_firecracker(config.firecracker_bin) is None:
            raise MissingTool(
                f"{config.firecracker_bin or 'firecracker'} not found",
                hint="install Firecracker on PATH, set firecracker_bin in config, or use "
                "--backend qemu",
            )

    # Firecracker always runs guests on KVM; it has no TCG.
    return BackendProfile(backend="firecracker", accel="kvm", tsc_khz=None, preflight=preflight)


def backend_checks(config: Config, kvm: KVMFacts) -> list[Check]:
    choice = default_backend(config, kvm)
    checks = [Check("backend", "ok", f"{choice.name}: {choice.reason}", required=False)]
    binary = find_firecracker(config.firecracker_bin)
    wanted = choice.name == "firecracker"
    if binary is None:
        checks.append(Check(
            "firecracker", "fail" if wanted else "warn",
            f"{config.firecracker_bin or 'firecracker'} not found",
            "install Firecracker on PATH or set firecracker_bin (only needed for "
            "--backend firecracker)", wanted,
        ))
    else:
        version = firecracker_version(binary)
        checks.append(Check(
            "firecracker", "ok" if version else "warn",
            f"{binary}: {version or '`--version` gave no answer'}",
            "" if version else "check that the binary runs on this host", False,
        ))
        checks.append(jailer_check(config, find_jailer(config.jailer_bin, binary),
                                   is_root=os.geteuid() == 0))
    checks.append(Check(
        "kvm for firecracker", "ok" if kvm.real else ("fail" if wanted else "warn"),
        "hardware KVM" if kvm.real else "no hardware KVM: Firecracker cannot run guests here",
        "" if kvm.real else "Firecracker needs /dev/kvm backed by vmx/svm; QEMU runs with TCG",
        wanted and not kvm.real,
    ))
    return checks


def jailer_check(config: Config, jailer: str | None, *, is_root: bool) -> Check:
    """Whether Firecracker VMMs run confined: only through the jailer, under a root daemon
    that gives each VM a uid of its own."""
    if jailer is not None and is_root and config.vmm_uids:
        return Check("firecracker confinement", "ok",
                     f"through {jailer}: a uid of its own per VM, chrooted, in a cgroup")
    why = ("no jailer found" if jailer is None else
           "bangerd is not root" if not is_root else "vmm_uids is empty")
    return Check(
        "firecracker confinement", "warn",
        f"Firecracker VMMs are not confined ({why}): they run as bangerd's user, unchrooted",
        "install Firecracker's jailer next to firecracker (or set jailer_bin), run bangerd "
        "as root and keep vmm_uids set", False,
    )
