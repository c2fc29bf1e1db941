from __future__ import annotations

from pathlib import Path

import pytest

from banger.host.hostinfo import KVMFacts, choose_accel, kvm_facts, tsc_khz

INTEL_CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
cpu MHz\t\t: 2995.200
flags\t\t: fpu vme de pse tsc msr constant_tsc vmx ssse3
"""
NO_VIRT_CPUINFO = "processor\t: 0\nflags\t\t: fpu vme tsc constant_tsc\n"


def fake_root(
    root: Path, *, kvm: bool = True, modules: tuple[str, ...] = (), cpuinfo: str = ""
) -> Path:
    (root / "dev").mkdir(parents=True)
    if kvm:
        (root / "dev/kvm").write_text("")
    for module in modules:
        (root / "sys/module" / module).mkdir(parents=True)
    (root / "proc").mkdir()
    if cpuinfo:
        (root / "proc/cpuinfo").write_text(cpuinfo)
    return root


def test_pvm_module_means_tcg(tmp_path: Path) -> None:
    root = fake_root(tmp_path, modules=("kvm", "kvm_pvm"), cpuinfo=INTEL_CPUINFO)
    facts = kvm_facts(root)
    assert facts.pvm
    assert not facts.real
    choice = choose_accel("auto", facts)
    assert choice.accel == "tcg"
    assert "pvm" in choice.reason


def test_kvm_intel_with_vmx_means_kvm(tmp_path: Path) -> None:
    root = fake_root(tmp_path, modules=("kvm", "kvm_intel"), cpuinfo=INTEL_CPUINFO)
    facts = kvm_facts(root)
    assert facts == KVMFacts(device=True, usable=True, pvm=False, vendor_module=True,
                             cpu_flag=True)
    assert choose_accel("auto", facts).accel == "kvm"


def test_kvm_amd_module_alone_is_enough(tmp_path: Path) -> None:
    facts = kvm_facts(fake_root(tmp_path, modules=("kvm_amd",)))
    assert facts.vendor_module and not facts.cpu_flag
    assert choose_accel("auto", facts).accel == "kvm"


def test_no_dev_kvm(tmp_path: Path) -> None:
    facts = kvm_facts(fake_root(tmp_path, kvm=False, cpuinfo=INTEL_CPUINFO))
    assert not facts.device and not facts.usable
    choice = choose_accel("auto", facts)
    assert (choice.accel, choice.reason) == ("tcg", "no /dev/kvm")


def test_dev_kvm_without_hardware_support(tmp_path: Path) -> None:
    facts = kvm_facts(fake_root(tmp_path, cpuinfo=NO_VIRT_CPUINFO))
    assert facts.usable and not facts.cpu_flag and not facts.vendor_module
    choice = choose_accel("auto", facts)
    assert choice.accel == "tcg"
    assert "vmx/svm" in choice.reason


def test_inaccessible_dev_kvm() -> None:
    facts = KVMFacts(device=True, usable=False, pvm=False, vendor_module=True, cpu_flag=True)
    choice = choose_accel("auto", facts)
    assert choice.accel == "tcg"
    assert "not accessible" in choice.reason


@pytest.mark.parametrize("requested", ["kvm", "tcg"])
def test_config_choice_wins(requested: str) -> None:
    facts = KVMFacts(device=False, usable=False, pvm=True, vendor_module=False, cpu_flag=False)
    choice = choose_accel(requested, facts)
    assert choice.accel == requested
    assert "config" in choice.reason


def test_tsc_from_sysfs(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys/devices/system/cpu/cpu0"
    sysfs.mkdir(parents=True)
    (sysfs / "tsc_freq_khz").write_text("2995200\n")
    assert tsc_khz(tmp_path) == 2995200


def test_tsc_from_cpuinfo_when_constant(tmp_path: Path) -> None:
    assert tsc_khz(fake_root(tmp_path, cpuinfo=INTEL_CPUINFO)) == 2995200


def test_garbage_sysfs_falls_back_to_cpuinfo(tmp_path: Path) -> None:
    root = fake_root(tmp_path, cpuinfo=INTEL_CPUINFO)
    sysfs = root / "sys/devices/system/cpu/cpu0"
    sysfs.mkdir(parents=True)
    (sysfs / "tsc_freq_khz").write_text("unknown\n")
    assert tsc_khz(root) == 2995200


def test_no_tsc_without_constant_tsc(tmp_path: Path) -> None:
    cpuinfo = "processor\t: 0\ncpu MHz\t\t: 2000.000\nflags\t\t: fpu tsc\n"
    assert tsc_khz(fake_root(tmp_path, cpuinfo=cpuinfo)) is None


def test_no_tsc_without_mhz(tmp_path: Path) -> None:
    assert tsc_khz(fake_root(tmp_path, cpuinfo=NO_VIRT_CPUINFO)) is None


def test_no_tsc_without_cpuinfo(tmp_path: Path) -> None:
    assert tsc_khz(tmp_path) is None
