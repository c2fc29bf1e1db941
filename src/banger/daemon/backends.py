"""The VMM backends a daemon offers: their launch facts, preflights and doctor lines."""

from __future__ import annotations

from banger.core.backends import BackendChoice, choose_backend
from banger.core.config import Config
from banger.core.errors import MissingTool
from banger.core.models import Check
from banger.daemon.vmrecords import Machine
from banger.host.hostinfo import KVMFacts
from banger.host.vmm.firecracker import find_firecracker, firecracker_version


def default_backend(config: Config, kvm: KVMFacts) -> BackendChoice:
    return choose_backend(
        config.backend,
        firecracker_found=find_firecracker(config.firecracker_bin) is not None,
        kvm_real=kvm.real,
    )


def firecracker_machine(config: Config) -> Machine:
    def preflight() -> None:
        if find_firecracker(config.firecracker_bin) is None:
            raise MissingTool(
                f"{config.firecracker_bin or 'firecracker'} not found",
                hint="install Firecracker on PATH, set firecracker_bin in config, or use "
                "--backend qemu",
            )

    # Firecracker always runs guests on KVM; it has no TCG.
    return Machine(backend="firecracker", accel="kvm", tsc_khz=None, preflight=preflight)


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
    checks.append(Check(
        "kvm for firecracker", "ok" if kvm.real else ("fail" if wanted else "warn"),
        "hardware KVM" if kvm.real else "no hardware KVM: Firecracker cannot run guests here",
        "" if kvm.real else "Firecracker needs /dev/kvm backed by vmx/svm; QEMU runs with TCG",
        wanted and not kvm.real,
    ))
    return checks
