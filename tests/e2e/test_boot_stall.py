"""A cold boot whose kernel says it will hang is rebooted in place and comes up.

The real stall (TCG's APIC timer calibration racing a busy host, core/guest.py) cannot be
caused on demand; this image plays it on its first boot only: it prints the kernel's words
on the console and blocks the boot, as the stalled kernel does.
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import BangerEnv, modified_test_image

MARKER = "/var/lib/banger-test-stalled"
STALL_UNIT = f"""\
[Unit]
Description=A kernel that hangs at boot, played once
DefaultDependencies=no
ConditionPathExists=!{MARKER}

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'touch {MARKER}; sync; \\
echo "APIC frequency too slow, disabling apic timer" >/dev/ttyS0; exec sleep infinity'

[Install]
WantedBy=sysinit.target
"""


def test_a_boot_that_stalls_is_rebooted_and_the_vm_comes_up(
    banger: BangerEnv, test_image: dict[str, str], tmp_path: Path,
) -> None:
    unit = tmp_path / "stall.service"
    unit.write_text(STALL_UNIT)
    debugfs = (
        "cd /etc/systemd/system\n"
        f"write {unit} banger-test-stall.service\n"
        "cd sysinit.target.wants\n"
        "symlink banger-test-stall.service ../banger-test-stall.service\n"
    )
    with modified_test_image(banger, test_image, tmp_path, "stally", debugfs):
        try:
            out = banger.run("vm", "create", "--name", "stall", "--image", "stally")
            assert "warning: stall: the guest kernel disabled its APIC timer" in out.stderr
            assert "rebooting it (1/3)" in out.stderr
            # The first boot ran (and stalled) in the same VMM process; the second came up.
            assert banger.run("vm", "ssh", "stall", "--", "test", "-e", MARKER).returncode == 0
            console = banger.run("vm", "logs", "stall").stdout
            boots = console.split("PCI: Fatal: No config space access function found")
            assert len(boots) >= 3, console  # two kernel boots (or more, if TCG stalled too)
            assert "APIC frequency too slow" in boots[1], console
        finally:
            banger.run("vm", "delete", "--force", "stall", check=False)
