"""The files this machine keeps per remote host to reach its guests with plain ssh."""

from __future__ import annotations

from pathlib import Path

from banger.client.guestreach import RemoteFiles
from banger.core.remote import RemoteHost


def test_guests_behind_loopback_ports_share_an_address_but_not_a_pin(tmp_path: Path) -> None:
    files = RemoteFiles(tmp_path, RemoteHost("devbox", "ada"), tmp_path / "key")
    files.remember("a", "10.0.2.15", "ssh-ed25519 AAAA-a", 40022)
    files.remember("b", "10.0.2.15", "ssh-ed25519 AAAA-b", 40023)
    files.remember("c", "172.16.0.2", "ssh-ed25519 AAAA-c")
    assert files.known_hosts.read_text().splitlines() == [
        "a.vm ssh-ed25519 AAAA-a", "b.vm ssh-ed25519 AAAA-b",
        "172.16.0.2,c.vm ssh-ed25519 AAAA-c",
    ]
    config = files.ssh_config.read_text()
    assert "Host a.vm\n    HostName 127.0.0.1\n    Port 40022\n    HostKeyAlias a.vm\n" in config
    assert "Host c.vm\n    HostName 172.16.0.2\n" in config
    files.remember("d", "172.16.0.2", "ssh-ed25519 AAAA-d")  # c's address, reused
    assert "c.vm" not in files.known_hosts.read_text()
