"""The guest boot contract: what every banger image carries and how per-VM facts reach it.

Per-VM facts travel on the kernel command line (``banger.ip=`` etc.). A oneshot unit baked
into every image reads them before networking and sshd start, writes the network config under
/run, sets the hostname, and installs the VM's own sshd host keys from the work disk (mounted
at /root by label). Nothing here runs anything; the image builder writes these files.
"""

from __future__ import annotations

from dataclasses import dataclass

WORK_DISK_LABEL = "banger-work"
ROOT_DISK_LABEL = "banger-root"
# Per-VM material the daemon stages on the work disk; the boot unit consumes it.
SEED_DIR = ".banger"
BOOT_SCRIPT_PATH = "/usr/local/lib/banger/banger-boot"
BOOT_UNIT_NAME = "banger-boot.service"

# Bump whenever anything below changes, so cached images are rebuilt.
CONTRACT_VERSION = "4"

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

BOOT_SCRIPT = r"""#!/bin/sh
# banger-boot: apply per-VM identity from the kernel command line before network and sshd.
set -eu

arg() {
    for word in $(cat /proc/cmdline); do
        case "$word" in "$1="*) printf '%s\n' "${word#*=}"; return 0 ;; esac
    done
    return 0
}

ip_cidr=$(arg banger.ip)
gateway=$(arg banger.gw)
dns=$(arg banger.dns)
name=$(arg banger.hostname)

if [ -n "$name" ]; then
    printf '%s\n' "$name" > /etc/hostname
    hostname "$name"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s %s.vm\n::1\tlocalhost ip6-localhost\n' \
        "$name" "$name" > /etc/hosts
fi

if [ -n "$ip_cidr" ]; then
    mkdir -p /run/systemd/network
    {
        printf '[Match]\nType=ether\nKind=!*\n\n[Network]\nAddress=%s\n' "$ip_cidr"
        [ -n "$gateway" ] && printf 'Gateway=%s\n' "$gateway"
        [ -n "$dns" ] && printf 'DNS=%s\n' "$dns"
        printf 'LinkLocalAddressing=no\nIPv6AcceptRA=no\n'
    } > /run/systemd/network/10-banger.network
fi
if [ -n "$dns" ]; then
    rm -f /etc/resolv.conf
    printf 'nameserver %s\n' "$dns" > /etc/resolv.conf
fi

# /root is the work disk. Give it the skeleton dotfiles once, and the perms sshd's
# StrictModes expects.
for f in .bashrc .profile; do
    [ -e "/root/$f" ] || cp "/etc/skel/$f" "/root/$f" 2>/dev/null || true
done
chown root:root /root
chmod 0700 /root
if [ -d /root/.ssh ]; then
    chmod 0700 /root/.ssh
    [ -f /root/.ssh/authorized_keys ] && chmod 0600 /root/.ssh/authorized_keys
fi

seed=/root/__SEED__
if [ -f "$seed/ssh_host_ed25519_key" ]; then
    install -m 0600 -o root -g root "$seed/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
    install -m 0644 -o root -g root "$seed/ssh_host_ed25519_key.pub" \
        /etc/ssh/ssh_host_ed25519_key.pub
elif [ ! -f /etc/ssh/ssh_host_ed25519_key ]; then
    # Not started by banger (no seed): still let sshd come up.
    ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
fi
if [ -f "$seed/machine-id" ]; then
    cp "$seed/machine-id" /etc/machine-id
fi
""".replace("__SEED__", SEED_DIR)

BOOT_UNIT = f"""\
[Unit]
Description=banger per-VM identity (network, hostname, sshd host keys)
DefaultDependencies=no
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


def kernel_cmdline(
    identity: BootIdentity, *, tsc_khz: int | None = None, extra: str = ""
) -> str:
    """The guest kernel command line: console on the serial port, root on the first disk,
    and the per-VM facts the boot unit reads."""
    parts = [
        "console=ttyS0",
        "root=/dev/vda",
        "rw",
        "panic=-1",
        "quiet",
        "loglevel=4",
        f"banger.ip={identity.ip}/{identity.prefix_len}",
        f"banger.gw={identity.gateway}",
        f"banger.dns={identity.dns}",
        f"banger.hostname={identity.hostname}",
    ]
    if tsc_khz:
        # Under TCG the guest's PIT calibration of the TSC hangs intermittently; TCG's TSC
        # runs at the host rate, so tell the kernel that rate and skip calibration.
        parts.append(f"tsc_early_khz={tsc_khz}")
    if extra:
        parts.append(extra)
    return " ".join(parts)
