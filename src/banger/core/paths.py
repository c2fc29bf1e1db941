"""Where banger keeps things (XDG base directories), computed from an environment mapping."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from banger.core.errors import PermissionDenied
from banger.core.xdg import SOCKET_NAME, banger_dirs


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    state_dir: Path
    cache_dir: Path
    runtime_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def ssh_dir(self) -> Path:
        return self.config_dir / "ssh"

    @property
    def default_ssh_key(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        return self.config_dir / "ssh_config"

    @property
    def db(self) -> Path:
        return self.state_dir / "banger.db"

    @property
    def daemon_log(self) -> Path:
        return self.state_dir / "bangerd.log"

    @property
    def daemon_stderr(self) -> Path:
        """Raw output of bangerd and its libraries: a crash before logging is set up, or a
        hard crash's dump; bangerd.log itself holds only JSON lines."""
        return self.state_dir / "bangerd.stderr"

    @property
    def daemon_lock(self) -> Path:
        return self.state_dir / "bangerd.lock"

    @property
    def vms_dir(self) -> Path:
        return self.state_dir / "vms"

    @property
    def images_dir(self) -> Path:
        return self.state_dir / "images"

    @property
    def socket(self) -> Path:
        return self.runtime_dir / SOCKET_NAME


def paths_from_env(env: Mapping[str, str]) -> Paths:
    config, state, cache, runtime = banger_dirs(env)
    return Paths(Path(config), Path(state), Path(cache), Path(runtime))


def refuse_foreign_dirs(paths: Paths, euid: int, owner_of: Callable[[Path], int | None]) -> None:
    """As root, refuse banger directories (or the nearest existing parent of one) that belong
    to another user; `owner_of(path)` is the uid that owns `path` (not following a symlink),
    None when nothing is there.

    `sudo -E banger ...`, or a HOME/XDG_* left pointing at someone's home, would otherwise
    have root create its database, keys, logs and VM disks in a directory that user owns,
    and they could swap a path for a symlink between two of root's steps to make root write
    or read wherever they like. An ordinary user's banger can only write where they can
    anyway, so only root checks."""
    if euid != 0:
        return
    for label, path in (
        ("config", paths.config_dir), ("state", paths.state_dir),
        ("cache", paths.cache_dir), ("runtime", paths.runtime_dir),
    ):
        existing = path
        owner = owner_of(existing)
        while owner is None and existing != existing.parent:
            existing = existing.parent
            owner = owner_of(existing)
        if owner not in (None, 0):
            raise PermissionDenied(
                f"banger runs as root but its {label} directory {path} is in {existing}, "
                f"owned by uid {owner}",
                hint="run banger as that user, or point HOME and XDG_* at root's own "
                "directories (e.g. `sudo -H banger ...`)",
            )
