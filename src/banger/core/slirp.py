"""User-mode networking (QEMU's `-netdev user`, libslirp): every guest has a private
network of its own inside its VMM, the same addresses for every VM, and is reached from the
host only through loopback ports forwarded to it (hostfwd)."""

from __future__ import annotations

from dataclasses import dataclass

# libslirp's defaults, spelled out so the guest's static configuration matches them.
NETWORK = "10.0.2.0/24"
GUEST_IP = "10.0.2.15"
GATEWAY = "10.0.2.2"
DNS = "10.0.2.3"
PREFIX_LEN = 24
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class UserNet:
    """A VMM's user-mode network. `ssh_port`: the loopback port forwarded to the guest's
    sshd (0: none, a template VM). `restrict`: no way out (a VM without NAT): the guest
    reaches neither the host nor anything beyond it, only forwarded ports reach the guest."""

    ssh_port: int
    restrict: bool


def netdev(net: UserNet, netdev_id: str) -> str:
    """QEMU's `-netdev` argument."""
    options = [
        f"user,id={netdev_id}", f"net={NETWORK}", f"host={GATEWAY}", f"dns={DNS}",
        "ipv6=off", f"restrict={'on' if net.restrict else 'off'}",
    ]
    if net.ssh_port:
        options.append(f"hostfwd=tcp:{LOOPBACK}:{net.ssh_port}-:22")
    return ",".join(options)


def ssh_endpoint(ip: str, ssh_port: int) -> tuple[str, int]:
    """Where the host reaches a guest's sshd: its loopback port, else its own address."""
    return (LOOPBACK, ssh_port) if ssh_port else (ip, 22)


def known_host_names(name: str, ssh_port: int) -> str:
    """How a known_hosts line names a guest reached at a loopback port (ssh looks up
    `[host]:port` when the port is not 22, and `NAME.vm` under HostKeyAlias)."""
    return f"[{LOOPBACK}]:{ssh_port},{name}.vm"
