"""banger's XDG base directories as plain strings: what banger.core.paths builds its Paths
from, and all the CLI's hot path needs (the daemon's socket) without pathlib."""

from __future__ import annotations

import posixpath

TYPE_CHECKING = False  # not typing's: importing typing costs the CLI ~4 ms per call
if TYPE_CHECKING:
    from collections.abc import Mapping

SOCKET_NAME = "bangerd.sock"
CONTEXTS_FILE = "contexts.toml"  # banger.core.remote: the named remote daemons


def banger_dirs(env: Mapping[str, str]) -> tuple[str, str, str, str]:
    """(config, state, cache, runtime) directories of banger for this environment."""
    home = env.get("HOME") or "/root"

    def xdg(var: str, *default: str) -> str:
        value = env.get(var, "")
        # The XDG spec says relative values are invalid and must be ignored.
        base = value if value.startswith("/") else posixpath.join(home, *default)
        return posixpath.normpath(posixpath.join(base, "banger"))

    state = xdg("XDG_STATE_HOME", ".local", "state")
    runtime_base = env.get("XDG_RUNTIME_DIR", "")
    runtime = (
        posixpath.normpath(posixpath.join(runtime_base, "banger"))
        if runtime_base.startswith("/") else posixpath.join(state, "run")
    )
    return xdg("XDG_CONFIG_HOME", ".config"), state, xdg("XDG_CACHE_HOME", ".cache"), runtime


def socket_path(env: Mapping[str, str]) -> str:
    return posixpath.join(banger_dirs(env)[3], SOCKET_NAME)
