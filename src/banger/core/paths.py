"""Where banger keeps things (XDG base directories), computed from an environment mapping."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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
