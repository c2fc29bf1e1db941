"""Reaching a guest with ssh from this machine when bangerd runs on another one.

The remote daemon's key and known_hosts are on the remote host, and the guest's address is
on that host's bridge. So this machine uses a key of its own (made once, never sent
anywhere but as its public half), which the guest agent adds to the guest's
authorized_keys; pins the guest's host key, which the daemon reports, in a known_hosts file
of this remote; and reaches the guest's address through the remote host's sshd (a
ProxyCommand over the shared connection; ProxyJump in the ssh_config for `ssh NAME.vm`)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

from banger.client.remote import shared_ssh
from banger.core.errors import GuestSetupFailed, MissingTool
from banger.core.sshconfig import render_ssh_config

TYPE_CHECKING = False  # not typing's: see banger.core.xdg
if TYPE_CHECKING:
    from typing import Any

    from banger.client import Client
    from banger.core.remote import RemoteHost

# Adds the key read on stdin once, where the guest's sshd looks (core/guest.py); /root is
# the VM's work disk, so it stays across restarts.
_AUTHORIZE = (
    'umask 077; mkdir -p /root/.ssh; key=$(cat); f=/root/.ssh/authorized_keys; '
    'grep -qxF "$key" "$f" 2>/dev/null || printf "%s\\n" "$key" >> "$f"'
)


def guest_access(client: Client, name: str) -> dict[str, str]:
    """What `ssh_argv` needs to reach VM `name` from here: the daemon's answer for a local
    daemon; for a remote one, this machine's key (authorized in the guest), its pinned host
    key and the hop through the remote host (`proxy_command`)."""
    access = client.vm_access(name)
    if client.remote is None:
        return access
    key = client_key(client.paths.default_ssh_key)
    errors: list[bytes] = []
    result = client.exec_vm(
        name, ["sh", "-c", _AUTHORIZE], stdin=Path(f"{key}.pub").read_bytes(),
        on_stdout=lambda _: None, on_stderr=errors.append,
    )
    if result.get("exit_code") != 0:
        said = b"".join(errors).decode(errors="replace").strip()
        raise GuestSetupFailed(
            f"could not add this machine's key to {name}'s authorized_keys "
            f"(exit status {result.get('exit_code')}{': ' + said if said else ''})",
            hint=f"see `banger vm logs {name}`",
        )
    files = RemoteFiles(client.paths.config_dir, client.remote, key)
    files.remember(access["name"], access["ip"], access["host_key"],
                   int(access.get("ssh_port") or 22))
    return {
        **access, "identity_file": str(key), "known_hosts": str(files.known_hosts),
        "proxy_command": proxy_command(client, client.remote),
    }


def proxy_command(client: Client, remote: RemoteHost) -> str:
    """An ssh stdio forward to the guest's %h:%p over the shared connection to the host."""
    env = client._env
    return shlex.join([*shared_ssh(env, remote), "-W", "%h:%p", *remote.ssh_args()])


def client_key(path: Path) -> Path:
    """This machine's banger key (ed25519, no passphrase: it only opens sandboxes)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "banger-client",
                 "-f", str(path)], check=True, capture_output=True,
            )
        except FileNotFoundError:
            raise MissingTool("ssh-keygen not found on this machine",
                              hint="install OpenSSH's client") from None
    return path


class RemoteFiles:
    """Per remote host, under banger's config dir: the guests' pinned host keys and an
    ssh_config with a ProxyJump entry per guest reached so far (`ssh NAME.vm`)."""

    def __init__(self, config_dir: Path, remote: RemoteHost, identity_file: Path) -> None:
        self.remote = remote
        self._identity_file = identity_file
        self.dir = config_dir / "remotes" / re.sub(r"[^A-Za-z0-9@._-]", "_", remote.jump)
        self.known_hosts = self.dir / "known_hosts"
        self.ssh_config = self.dir / "ssh_config"
        self._guests = self.dir / "guests.json"

    def remember(self, name: str, ip: str, host_key: str, ssh_port: int = 22) -> None:
        """Pin `name`'s host key (replacing what its name or address had) and list it in
        the ssh_config. `ssh_port`: not 22 for a guest behind a loopback port of the host
        (user-mode networking, where every guest has the same address)."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        guests: dict[str, dict[str, Any]] = {}
        if self._guests.exists():
            guests = json.loads(self._guests.read_text())
        guests = {n: g for n, g in guests.items()
                  if n != name and (g["ip"], g.get("ssh_port", 22)) != (ip, ssh_port)}
        guests[name] = {"ip": ip, "host_key": host_key, "ssh_port": ssh_port}
        _write(self._guests, json.dumps(guests, indent=1) + "\n")
        # A guest behind a port is checked under its name only (HostKeyAlias): its address
        # is every such guest's.
        _write(self.known_hosts, "".join(
            f"{'' if g.get('ssh_port', 22) != 22 else g['ip'] + ','}{n}.vm {g['host_key']}\n"
            for n, g in sorted(guests.items())
        ))
        _write(self.ssh_config, render_ssh_config(
            [(n, g["ip"]) for n, g in guests.items()],
            identity_file=str(self._identity_file),
            known_hosts=str(self.known_hosts), proxy_jump=self.remote.jump,
            loopback_ports={n: g["ssh_port"] for n, g in guests.items()
                            if g.get("ssh_port", 22) != 22},
        ))


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(text)
    tmp.replace(path)
