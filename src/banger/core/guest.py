"""The guest boot contract: what every banger image carries and how per-VM facts reach it.

Per-VM facts travel on the kernel command line (``banger.ip=`` etc.). A oneshot unit baked
into every image reads them before networking and sshd start, writes the network config under
/run, sets the hostname, and installs the VM's own sshd host keys from the work disk (mounted
at /root by label). Nothing here runs anything; the image builder writes these files.
"""

from __future__ import annotations

from dataclasses import dataclass

from banger.core.programs import guest_program

WORK_DISK_LABEL = "banger-work"
ROOT_DISK_LABEL = "banger-root"
# Per-VM material the daemon stages on the work disk; the boot unit consumes it.
SEED_DIR = ".banger"
BOOT_SCRIPT_PATH = "/usr/local/lib/banger/banger-boot"
BOOT_UNIT_NAME = "banger-boot.service"
# On the kernel command line of warm-template VMs only (see banger.core.agent).
AGENT_KERNEL_FLAG = "banger.agent"

# Bump whenever anything below changes, so cached images are rebuilt.
CONTRACT_VERSION = "15"

# Exactly the seeds' hardening; host keys come from the daemon, never generated in the image.
SSHD_CONFIG = """\
# Managed by banger.
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile /root/.ssh/authorized_keys
UseDNS no
HostKey /etc/ssh/ssh_host_ed25519_key
"""

# Pass 0: no fsck of the work disk in the guest. Under TCG it sat on the boot's critical path
# (before the boot unit, hence before network and sshd); ext4 replays its journal at mount,
# and the host can `e2fsck -p` the work disk at native speed while the VM is stopped.
FSTAB = f"""\
# Managed by banger: the root overlay and the per-VM work disk.
LABEL={WORK_DISK_LABEL} /root ext4 defaults,nofail,x-systemd.device-timeout=20s 0 0
"""

BOOT_SCRIPT = guest_program("banger-boot.sh", SEED=SEED_DIR)

BOOT_UNIT = f"""\
[Unit]
Description=banger per-VM identity (network, hostname, sshd host keys)
DefaultDependencies=no
# A template VM has no identity yet: banger-agent runs this script after a restore.
ConditionKernelCommandLine=!{AGENT_KERNEL_FLAG}
RequiresMountsFor=/root
After=local-fs.target
Before=network-pre.target systemd-networkd.service ssh.service sysinit.target
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={BOOT_SCRIPT_PATH}

[Install]
WantedBy=sysinit.target
"""


@dataclass(frozen=True)
class BootIdentity:
    ip: str
    prefix_len: int
    gateway: str
    dns: str
    hostname: str


# loglevel=5: kernel warnings reach the console (a line or two per boot), among them the
# ones boot_stall() looks for.
_BASE_CMDLINE = ("console=ttyS0", "root=/dev/vda", "rw", "panic=-1", "quiet", "loglevel=5")

# Kernel warnings after which the guest never finishes booting, and what to tell the user.
# Under TCG, when the host preempts the boot vCPU during the local APIC timer's calibration
# (100 ms, timed by the TSC), the calibration loop catches up in one burst, measures an APIC
# that barely counted, and the kernel disables its APIC timer; it then hangs bringing up the
# other vCPUs or soon after, both vCPUs spinning (about 1 boot in 60-120 at load 8-10 on
# two cores). TCG has no TSC-deadline timer and Linux no option to preset the APIC rate, so
# the remedy is a reboot, which calibrates again.
_BOOT_STALLS: dict[bytes, str] = {
    b"APIC frequency too slow, disabling apic timer":
        "the guest kernel disabled its APIC timer (its calibration ran while the host was "
        "busy) and would hang",
}


def boot_stall(console: bytes) -> str | None:
    """Why the guest whose console output is `console` will not finish booting, if its
    kernel said something that means so; None otherwise."""
    for marker, reason in _BOOT_STALLS.items():
        if marker in console:
            return reason
    return None


def guest_aslr(setting: str, accel: str) -> bool:
    """Whether guests randomise their address spaces (config `guest_aslr`). Under TCG, QEMU
    finds a translated block by guest virtual address: with randomised mappings, every new
    process runs its libraries at new addresses and pays their translation again."""
    return setting == "on" or (setting == "auto" and accel != "tcg")


def kernel_cmdline(
    identity: BootIdentity | None, *, tsc_khz: int | None = None, aslr: bool = True,
    extra: str = "",
) -> str:
    """The guest kernel command line: console on the serial port, root on the first disk,
    and the per-VM facts the boot unit reads. Without an identity it is a warm template's:
    banger-agent waits for the identity of each VM restored from it."""
    parts = list(_BASE_CMDLINE)
    if identity is None:
        parts.append(AGENT_KERNEL_FLAG)
    else:
        parts += [
            f"banger.ip={identity.ip}/{identity.prefix_len}",
            f"banger.gw={identity.gateway}",
            f"banger.dns={identity.dns}",
            f"banger.hostname={identity.hostname}",
        ]
    if tsc_khz:
        # Under TCG the guest's PIT calibration of the TSC hangs intermittently; TCG's TSC
        # runs at the host rate, so tell the kernel that rate and skip calibration.
        parts.append(f"tsc_early_khz={tsc_khz}")
        # Its TSC sync check then fails and the guest falls back to the jiffies clocksource:
        # a guest clock that loses time when the host is busy, and no high-res timers.
        parts.append("tsc=reliable")
    if not aslr:
        parts.append("norandmaps")
    if extra:
        parts.append(extra)
    return " ".join(parts)


# --- Root overlay for VMMs without qcow2 (Firecracker) -----------------------------------------
# Where the filesystem cannot reflink the base image, the VM gets the image's root read-only
# (/dev/vda) and a writable overlay disk of its own, combined into an overlayfs `/` in the
# initramfs. banger's own initrd (initrd.py) does that itself when it sees `banger.overlay=`.
# For an image's initramfs-tools initrd the daemon appends a small cpio archive (the kernel
# unpacks concatenated archives in order) and boots with `rdinit=`, so the hook runs the
# image's own /init after adding one init-bottom step. The same archive goes onto either
# kind: the rdinit tells them apart by banger's marker file.

OVERLAY_DISK_LABEL = "banger-overlay"
OVERLAY_KERNEL_ARG = "banger.overlay"
# In banger's own initrd only.
BANGER_INITRD_MARKER = "/banger-initrd"
OVERLAY_RDINIT_PATH = "/banger/rdinit"
OVERLAY_HOOK_PATH = "/banger/overlay"
# Where the layers stay visible in the running guest (the layout Ubuntu's overlayroot uses).
OVERLAY_LOWER_MOUNT = "/media/root-ro"
OVERLAY_UPPER_MOUNT = "/media/root-rw"
# Bump when its two scripts (banger/guest/overlay-*.sh) change, so cached initrds are
# rebuilt.
OVERLAY_VERSION = "2"

OVERLAY_RDINIT = guest_program(
    "overlay-rdinit.sh", HOOK=OVERLAY_HOOK_PATH, MARKER=BANGER_INITRD_MARKER
)

OVERLAY_HOOK = guest_program(
    "overlay-hook.sh", LOWER=OVERLAY_LOWER_MOUNT, UPPER=OVERLAY_UPPER_MOUNT,
    ARG=OVERLAY_KERNEL_ARG,
)


def overlay_initramfs_files() -> dict[str, tuple[int, bytes]]:
    """The archive appended to the image's initrd: path -> (mode, content); b"" with a
    directory mode for directories."""
    return {
        "banger": (0o040755, b""),
        OVERLAY_RDINIT_PATH.lstrip("/"): (0o100755, OVERLAY_RDINIT.encode()),
        OVERLAY_HOOK_PATH.lstrip("/"): (0o100755, OVERLAY_HOOK.encode()),
    }


def overlay_boot_args(device: str) -> str:
    """Kernel arguments for a root overlay on `device`; the base root is mounted read-only."""
    return f"ro rdinit={OVERLAY_RDINIT_PATH} {OVERLAY_KERNEL_ARG}={device}"


# --- First boot of images without sshd (OCI pulls) ---------------------------------------------
# An image pulled from a registry may lack openssh-server. This unit installs it with the
# guest's own package manager on the first boot (it needs the VM to reach a mirror: --nat),
# or says on the console, which `banger vm logs` shows, why it cannot.

SSH_INSTALL_SCRIPT_PATH = "/usr/local/lib/banger/banger-install-ssh"
SSH_INSTALL_UNIT_NAME = "banger-install-ssh.service"

# The script's failure lines start with this on the console: the daemon stops waiting for
# ssh when one appears, and reports it.
SSH_INSTALL_FAILED = "banger: FAILED"

SSH_INSTALL_SCRIPT = guest_program("banger-install-ssh.sh")

SSH_INSTALL_UNIT = f"""\
[Unit]
Description=banger: install openssh-server on first boot
After=network-online.target {BOOT_UNIT_NAME} systemd-networkd.service
Wants=network-online.target
ConditionPathExists=!/usr/sbin/sshd

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={SSH_INSTALL_SCRIPT_PATH}
StandardOutput=journal+console
TimeoutStartSec=15min

[Install]
WantedBy=multi-user.target
"""


def ssh_install_failure(console: bytes) -> str | None:
    """The install script's failure message in a console log ("FAILED ..."), if any."""
    for line in console.decode(errors="replace").splitlines():
        at = line.find(SSH_INSTALL_FAILED)
        if at >= 0:
            return line[at + len("banger: "):].strip()
    return None
