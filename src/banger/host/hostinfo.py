"""Facts about the host: is KVM real, the TSC rate, which tools exist."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AccelChoice:
    accel: str  # "kvm" | "tcg"
    reason: str


@dataclass(frozen=True)
class KVMFacts:
    device: bool
    usable: bool
    pvm: bool
    vendor_module: bool
    cpu_flag: bool

    @property
    def real(self) -> bool:
        # The "pvm" module is an emulated KVM that runs a stock guest kernel ~100x slower
        # than plain TCG: treat it as no KVM at all.
        return self.usable and not self.pvm and (self.vendor_module or self.cpu_flag)


def kvm_facts(root: Path = Path("/")) -> KVMFacts:
    device = root / "dev/kvm"
    modules = root / "sys/module"
    try:
        cpuinfo = (root / "proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return KVMFacts(
        device=device.exists(),
        usable=device.exists() and os.access(device, os.R_OK | os.W_OK),
        pvm=(modules / "kvm_pvm").exists(),
        vendor_module=(modules / "kvm_intel").exists() or (modules / "kvm_amd").exists(),
        cpu_flag=bool(flags & {"vmx", "svm"}),
    )


def choose_accel(requested: str, facts: KVMFacts) -> AccelChoice:
    if requested == "tcg":
        return AccelChoice("tcg", "accel = \"tcg\" in config")
    if requested == "kvm":
        return AccelChoice("kvm", "accel = \"kvm\" in config")
    if facts.real:
        return AccelChoice("kvm", "/dev/kvm is hardware KVM")
    if facts.pvm:
        return AccelChoice("tcg", "/dev/kvm is the emulated 'pvm' KVM (much slower than TCG)")
    if not facts.device:
        return AccelChoice("tcg", "no /dev/kvm")
    if not facts.usable:
        return AccelChoice("tcg", "/dev/kvm is not accessible to this user")
    return AccelChoice("tcg", "no vmx/svm CPU support behind /dev/kvm")


_MHZ = re.compile(r"^cpu MHz\s*:\s*([\d.]+)", re.MULTILINE)


def tsc_khz(root: Path = Path("/")) -> int | None:
    """The host TSC rate, if it is constant (then TCG's guest TSC runs at the same rate)."""
    sysfs = root / "sys/devices/system/cpu/cpu0/tsc_freq_khz"
    try:
        return int(sysfs.read_text().strip())
    except (OSError, ValueError):
        pass
    try:
        cpuinfo = (root / "proc/cpuinfo").read_text()
    except OSError:
        return None
    if "constant_tsc" not in cpuinfo:
        return None
    match = _MHZ.search(cpuinfo)
    return int(float(match.group(1)) * 1000) if match else None


def which(tool: str) -> str | None:
    found = shutil.which(tool)
    if found is None:
        for extra in ("/usr/sbin", "/sbin"):
            candidate = Path(extra) / tool
            if candidate.exists():
                return str(candidate)
    return found


def free_bytes(path: Path) -> int:
    while not path.exists():
        path = path.parent
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def cpu_count() -> int:
    return os.cpu_count() or 1


def memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def vmm_version(binary: str) -> str:
    """`binary --version`'s first line (part of a warm template's key), cached per binary and
    its mtime so an upgrade in place is noticed; "" if it cannot run."""
    path = which(binary)
    if path is None:
        return ""
    mtime = os.stat(path).st_mtime_ns
    cached = _VERSIONS.get(path)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    import subprocess

    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    version = out.splitlines()[0].strip() if out else ""
    _VERSIONS[path] = (mtime, version)
    return version


_VERSIONS: dict[str, tuple[int, str]] = {}
