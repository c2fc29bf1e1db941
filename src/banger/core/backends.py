"""Which VMM backend a daemon uses by default (`backend = "auto"|"qemu"|"firecracker"`)."""

from __future__ import annotations

from dataclasses import dataclass

BACKENDS = ("qemu", "firecracker")


@dataclass(frozen=True)
class BackendChoice:
    name: str  # "qemu" | "firecracker"
    reason: str


def choose_backend(requested: str, *, firecracker_found: bool, kvm_real: bool) -> BackendChoice:
    """`auto` picks Firecracker only where it can really run: its binary is there and KVM is
    hardware KVM (Firecracker has no software fallback); QEMU otherwise."""
    if requested in BACKENDS:
        return BackendChoice(requested, f'backend = "{requested}" in config')
    if firecracker_found and kvm_real:
        return BackendChoice("firecracker", "firecracker found and /dev/kvm is hardware KVM")
    if not firecracker_found:
        return BackendChoice("qemu", "no firecracker binary (PATH or firecracker_bin)")
    return BackendChoice("qemu", "firecracker found, but no hardware KVM for it")
