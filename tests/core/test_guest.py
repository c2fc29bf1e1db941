from __future__ import annotations

from banger.core import guest
from banger.core.guest import (
    SSH_INSTALL_FAILED,
    SSH_INSTALL_SCRIPT,
    BootIdentity,
    boot_stall,
    guest_aslr,
    kernel_cmdline,
    ssh_install_failure,
)

IDENTITY = BootIdentity(
    ip="172.16.0.2", prefix_len=24, gateway="172.16.0.1", dns="172.16.0.1", hostname="calm-otter"
)


def test_cmdline_carries_the_identity() -> None:
    words = kernel_cmdline(IDENTITY).split()
    assert "console=ttyS0" in words
    assert "root=/dev/vda" in words
    assert "banger.ip=172.16.0.2/24" in words
    assert "banger.gw=172.16.0.1" in words
    assert "banger.dns=172.16.0.1" in words
    assert "banger.hostname=calm-otter" in words


def test_tsc_early_khz_only_when_given() -> None:
    assert "tsc_early_khz" not in kernel_cmdline(IDENTITY)
    assert "tsc_early_khz" not in kernel_cmdline(IDENTITY, tsc_khz=None)
    assert "tsc_early_khz" not in kernel_cmdline(IDENTITY, tsc_khz=0)
    words = kernel_cmdline(IDENTITY, tsc_khz=2995200).split()
    assert "tsc_early_khz=2995200" in words
    assert "tsc=reliable" in words
    assert "tsc=reliable" not in kernel_cmdline(IDENTITY)


def test_extra_goes_last() -> None:
    line = kernel_cmdline(IDENTITY, tsc_khz=1000, extra="systemd.unit=rescue.target")
    assert line.endswith(" systemd.unit=rescue.target")


def test_boot_script_reads_the_same_keys_the_cmdline_sets() -> None:
    for key in ("banger.ip", "banger.gw", "banger.dns", "banger.hostname"):
        assert f"arg {key})" in guest.BOOT_SCRIPT
    assert "__SEED__" not in guest.BOOT_SCRIPT
    assert f"/root/{guest.SEED_DIR}" in guest.BOOT_SCRIPT
    assert f"ExecStart={guest.BOOT_SCRIPT_PATH}" in guest.BOOT_UNIT


def test_fstab_mounts_the_work_disk_by_label() -> None:
    assert f"LABEL={guest.WORK_DISK_LABEL} /root ext4" in guest.FSTAB


def test_ssh_install_failure_is_found_on_the_console() -> None:
    assert ssh_install_failure(b"booting\nbanger: this image has no openssh-server\n") is None
    console = (b"[ 9.1] banger-install-ssh[7]: banger: FAILED to install openssh-server: x\r\n"
               b"banger: FAILED later\n")
    assert ssh_install_failure(console) == "FAILED to install openssh-server: x"
    assert ssh_install_failure(b"\xff\xfe garbage\n") is None
    # Every way the script gives up is a line the daemon recognises.
    failures = [line for line in SSH_INSTALL_SCRIPT.splitlines() if 'say "FAILED' in line]
    assert len(failures) == 3
    assert 'say() { echo "banger: $*"' in SSH_INSTALL_SCRIPT
    assert SSH_INSTALL_FAILED == "banger: FAILED"


def test_a_boot_stall_is_found_on_the_console() -> None:
    assert boot_stall(b"[    0.38] PCI: Fatal: No config space access function found\n") is None
    reason = boot_stall(b"[    0.12] APIC frequency too slow, disabling apic timer\r\n")
    assert reason is not None and "APIC timer" in reason


def test_kernel_warnings_reach_the_console() -> None:
    # boot_stall() reads KERN_WARNING lines: loglevel must let level 4 through.
    assert "loglevel=5" in kernel_cmdline(IDENTITY).split()


def test_ssh_install_keeps_services_down_while_dpkg_runs() -> None:
    script = SSH_INSTALL_SCRIPT
    assert script.index("exit 101") < script.index("apt-get install")
    assert script.index('rm -f "$policy"') < script.index("systemctl restart")


def test_boot_script_is_valid_sh() -> None:
    import subprocess

    subprocess.run(["sh", "-n", "-c", guest.BOOT_SCRIPT], check=True)


def test_aslr_is_off_under_tcg_only_by_default() -> None:
    assert guest_aslr("auto", "tcg") is False
    assert guest_aslr("auto", "kvm") is True
    assert guest_aslr("on", "tcg") is True
    assert guest_aslr("off", "kvm") is False
    assert "norandmaps" in kernel_cmdline(IDENTITY, aslr=False).split()
    assert "norandmaps" not in kernel_cmdline(IDENTITY)
    assert "norandmaps" in kernel_cmdline(None, aslr=False).split()
