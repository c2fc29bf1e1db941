"""Keeps ~/.config/banger/ssh_config current: rebuilt from the store whenever a VM is created,
deleted or changed (a VM listener), and once at startup."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from banger.core.errors import BangerError
from banger.core.models import VM
from banger.core.sshconfig import render_ssh_config
from banger.daemon.store import Store

log = logging.getLogger("banger.sshconfig")


class SSHConfigFile:
    def __init__(self, store: Store, path: Path, *, identity_file: Path, known_hosts: Path):
        self._store = store
        self.path = path
        self._identity_file = identity_file
        self._known_hosts = known_hosts

    def write(self) -> None:
        """Rewrite the file if it changed. Failures are logged: a stale ssh shortcut must
        never fail a VM operation or the daemon's start."""
        try:
            self._write()
        except (OSError, BangerError) as exc:
            log.error("could not write %s: %s", self.path, exc)

    def _write(self) -> None:
        vms = self._store.list_vms()
        text = render_ssh_config(
            ((vm.name, vm.ip) for vm in vms),
            identity_file=str(self._identity_file), known_hosts=str(self._known_hosts),
            loopback_ports={vm.name: vm.ssh_port for vm in vms if vm.ssh_port},
        )
        try:
            unchanged = self.path.read_text() == text and self.path.stat().st_mode & 0o077 == 0
        except OSError:
            unchanged = False
        if unchanged:
            return  # most events (start, stop) change no name or address
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(self.path.name + ".tmp")
        # 0600 from the first byte: ssh refuses an Include that others can write.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            os.fchmod(fd, 0o600)
            f.write(text)
        tmp.replace(self.path)

    async def on_vm_event(self, _: VM) -> None:
        self.write()
