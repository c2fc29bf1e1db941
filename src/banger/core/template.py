"""Warm templates: what makes one valid for a VM, and what is recorded with it.

A template is a VM of an image booted until only its identity is missing, then saved: its
root disk, its RAM (a file every VM restored from it maps copy-on-write) and its device
state. Restoring is only sound onto the very same image, kernel, VMM backend and version and
VM size, so a template carries a key over all of those; any difference makes it stale.
Templates are kept per backend: a QEMU and a Firecracker template of one image coexist."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from banger.core.guest import CONTRACT_VERSION

# Bump when the way templates are made or restored changes.
FORMAT_VERSION = "2"

# Its root disk and work disk are a VM dir's (banger.core.vmdir).
MEMORY_FILE = "memory"
STATE_FILE = "state"
META_FILE = "meta.json"
# The template's work disk: never formatted, so the template mounts nothing at /root. Large
# and sparse because the guest keeps the size it saw at boot: every restored VM's own,
# smaller work disk then fits inside it. Named like a VM's work disk (VMDir.work_disk): a
# Firecracker snapshot records its drives by those names, and a VM restored from it opens its
# own disks by them.
WORK_PLACEHOLDER_BYTES = 1 << 40


@dataclass(frozen=True)
class FileFacts:
    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class TemplateInputs:
    """Everything a restore depends on."""

    backend: str  # "qemu" | "firecracker"
    image: str
    rootfs: FileFacts
    kernel: FileFacts
    initrd: FileFacts | None
    vmm_version: str
    accel: str
    vcpu: int
    memory_mib: int
    aslr: bool = True  # the guest kernel's address-space randomisation (config guest_aslr)
    # The NIC's backend when it is not a TAP ("user": QEMU user-mode networking, whose state
    # is in the saved stream).
    nic: str = ""


def template_key(inputs: TemplateInputs) -> str:
    facts: dict[str, Any] = asdict(inputs)
    if not facts["nic"]:
        del facts["nic"]  # the keys of TAP templates made before it existed stay valid
    facts["format"] = FORMAT_VERSION
    facts["contract"] = CONTRACT_VERSION
    blob = json.dumps(facts, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


@dataclass(frozen=True)
class TemplateMeta:
    inputs: TemplateInputs
    key: str
    created_at: float
    build_seconds: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> TemplateMeta:
        """Raises ValueError (or KeyError/TypeError) on anything malformed."""
        data = json.loads(text)
        raw = data["inputs"]

        def facts(value: Any) -> FileFacts:
            return FileFacts(str(value["path"]), int(value["size"]), int(value["mtime_ns"]))

        inputs = TemplateInputs(
            backend=str(raw["backend"]),
            image=str(raw["image"]),
            rootfs=facts(raw["rootfs"]),
            kernel=facts(raw["kernel"]),
            initrd=None if raw.get("initrd") is None else facts(raw["initrd"]),
            vmm_version=str(raw["vmm_version"]),
            accel=str(raw["accel"]),
            vcpu=int(raw["vcpu"]),
            memory_mib=int(raw["memory_mib"]),
            aslr=bool(raw.get("aslr", True)),
            nic=str(raw.get("nic", "")),
        )
        return cls(
            inputs=inputs,
            key=str(data["key"]),
            created_at=float(data["created_at"]),
            build_seconds=float(data.get("build_seconds", 0.0)),
        )


_VMM_NAMES = {"qemu": "QEMU", "firecracker": "Firecracker"}


def differences(old: TemplateInputs, new: TemplateInputs) -> list[str]:
    """What changed, in words, for the warning when a template is stale."""
    out = []
    if old.rootfs != new.rootfs:
        out.append("the image changed")
    if old.kernel != new.kernel or old.initrd != new.initrd:
        out.append("the kernel changed")
    if old.vmm_version != new.vmm_version:
        out.append(f"{_VMM_NAMES.get(new.backend, new.backend)} changed")
    if (old.vcpu, old.memory_mib) != (new.vcpu, new.memory_mib):
        out.append("the VM size changed")
    if old.accel != new.accel:
        out.append("the accelerator changed")
    if old.aslr != new.aslr:
        out.append("the guest_aslr setting changed")
    if old.nic != new.nic:
        out.append("the network mode changed")
    return out
