"""Where banger keeps things (XDG base directories), computed from an environment mapping."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


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
        return self.runtime_dir / "bangerd.sock"


def paths_from_env(env: Mapping[str, str]) -> Paths:
    home = Path(env.get("HOME") or "/root")

    def xdg(var: str, default: Path) -> Path:
        value = env.get(var, "")
        # The XDG spec says relative values are invalid and must be ignored.
        return Path(value) if value.startswith("/") else default

    state = xdg("XDG_STATE_HOME", home / ".local" / "state") / "banger"
    runtime_base = env.get("XDG_RUNTIME_DIR", "")
    runtime = Path(runtime_base) / "banger" if runtime_base.startswith("/") else state / "run"
    return Paths(
        config_dir=xdg("XDG_CONFIG_HOME", home / ".config") / "banger",
        state_dir=state,
        cache_dir=xdg("XDG_CACHE_HOME", home / ".cache") / "banger",
        runtime_dir=runtime,
    )
