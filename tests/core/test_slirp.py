from __future__ import annotations

from banger.core import slirp


def test_netdev_forwards_loopback_to_sshd_and_restricts_without_nat() -> None:
    assert slirp.netdev(slirp.UserNet(ssh_port=40022, restrict=True), "net0") == (
        "user,id=net0,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,ipv6=off,restrict=on,"
        "hostfwd=tcp:127.0.0.1:40022-:22"
    )
    template = slirp.netdev(slirp.UserNet(ssh_port=0, restrict=False), "n")
    assert "hostfwd" not in template and "restrict=off" in template


def test_ssh_endpoint_and_known_host_names() -> None:
    assert slirp.ssh_endpoint("172.16.0.2", 0) == ("172.16.0.2", 22)
    assert slirp.ssh_endpoint("10.0.2.15", 40022) == ("127.0.0.1", 40022)
    assert slirp.known_host_names("dev", 40022) == "[127.0.0.1]:40022,dev.vm"
