"""`[[file_sync]]`: host files and directories copied onto a VM's work disk (the guest's
/root) when the VM is created. The rules live here; the daemon does the copying."""

from __future__ import annotations

import posixpath
import re

DEFAULT_FILE_MODE = 0o600
DIR_MODE = 0o700
_MODE = re.compile(r"^0?[0-7]{3}$")
# Files banger itself puts on the work disk; a sync entry must not replace them.
RESERVED = (".ssh/authorized_keys", ".banger")


def work_disk_path(guest: str) -> str:
    """The path below /root (the work disk's root) for a guest path under `~/` or `/root/`.
    Raises ValueError naming the rule, for the config schema to report."""
    if guest.startswith("~/"):
        rest = guest[2:]
    elif guest.startswith("/root/"):
        rest = guest[len("/root/"):]
    else:
        raise ValueError(
            f"guest path {guest!r} must be under ~/ or /root/ (the VM's work disk)"
        )
    relative = posixpath.normpath(rest) if rest else ""
    if relative in ("", ".") or relative == ".." or relative.startswith(("../", "/")):
        raise ValueError(f"guest path {guest!r} must name a file or directory below /root")
    for reserved in RESERVED:
        if relative == reserved or relative.startswith(reserved + "/"):
            raise ValueError(f"guest path {guest!r} is managed by banger (/root/{reserved})")
    return relative


def parse_mode(text: str) -> int:
    """An octal mode string such as "0755" or "600"."""
    if not _MODE.match(text):
        raise ValueError(f"mode {text!r} is not an octal file mode such as \"0644\"")
    return int(text, 8)


def check_host_path(host: str) -> str:
    if not host.startswith(("/", "~")):
        raise ValueError(f"host path {host!r} must be absolute or start with ~")
    return host
