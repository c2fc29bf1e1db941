from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from banger.core.errors import PermissionDenied
from banger.core.paths import paths_from_env, refuse_foreign_dirs


def test_defaults_under_home() -> None:
    paths = paths_from_env({"HOME": "/home/u"})
    assert paths.config_dir == Path("/home/u/.config/banger")
    assert paths.state_dir == Path("/home/u/.local/state/banger")
    assert paths.cache_dir == Path("/home/u/.cache/banger")
    # No XDG_RUNTIME_DIR: the socket lives under the state dir.
    assert paths.runtime_dir == Path("/home/u/.local/state/banger/run")


def test_xdg_variables_are_used() -> None:
    paths = paths_from_env({
        "HOME": "/home/u",
        "XDG_CONFIG_HOME": "/x/config",
        "XDG_STATE_HOME": "/x/state",
        "XDG_CACHE_HOME": "/x/cache",
        "XDG_RUNTIME_DIR": "/run/user/1000",
    })
    assert paths.config_dir == Path("/x/config/banger")
    assert paths.state_dir == Path("/x/state/banger")
    assert paths.cache_dir == Path("/x/cache/banger")
    assert paths.runtime_dir == Path("/run/user/1000/banger")
    assert paths.socket == Path("/run/user/1000/banger/bangerd.sock")


def test_relative_xdg_values_are_ignored() -> None:
    paths = paths_from_env({
        "HOME": "/home/u",
        "XDG_CONFIG_HOME": "relative/config",
        "XDG_STATE_HOME": "./state",
        "XDG_CACHE_HOME": "~/cache",
        "XDG_RUNTIME_DIR": "run",
    })
    assert paths == paths_from_env({"HOME": "/home/u"})


def test_empty_xdg_values_are_ignored() -> None:
    env = {"HOME": "/home/u", "XDG_CONFIG_HOME": "", "XDG_RUNTIME_DIR": ""}
    assert paths_from_env(env) == paths_from_env({"HOME": "/home/u"})


def test_missing_home_falls_back_to_root() -> None:
    assert paths_from_env({}).config_dir == Path("/root/.config/banger")


def test_derived_files() -> None:
    paths = paths_from_env({"HOME": "/h"})
    assert paths.config_file == Path("/h/.config/banger/config.toml")
    assert paths.default_ssh_key == Path("/h/.config/banger/ssh/id_ed25519")
    assert paths.known_hosts == Path("/h/.config/banger/ssh/known_hosts")
    assert paths.db == Path("/h/.local/state/banger/banger.db")
    assert paths.daemon_log == Path("/h/.local/state/banger/bangerd.log")
    assert paths.vms_dir.parent == paths.images_dir.parent == paths.state_dir


def _owners(table: dict[str, int]) -> Callable[[Path], int | None]:
    return lambda path: table.get(str(path))


def test_root_refuses_directories_another_user_owns() -> None:
    paths = paths_from_env({"HOME": "/home/alice", "XDG_RUNTIME_DIR": "/run/user/0"})
    # Nothing of banger's exists yet: the nearest existing parent, alice's home, decides.
    owners = _owners({"/": 0, "/home": 0, "/home/alice": 1000, "/run/user/0": 0})
    with pytest.raises(PermissionDenied) as info:
        refuse_foreign_dirs(paths, 0, owners)
    assert "/home/alice/.config/banger is in /home/alice, owned by uid 1000" in info.value.message
    assert "sudo -H" in info.value.hint


def test_root_uses_its_own_directories_and_a_user_theirs() -> None:
    paths = paths_from_env({"HOME": "/root", "XDG_RUNTIME_DIR": "/run/user/0"})
    refuse_foreign_dirs(paths, 0, _owners({"/": 0, "/root": 0, "/run/user/0": 0}))
    alice = paths_from_env({"HOME": "/home/alice", "XDG_RUNTIME_DIR": "/run/user/1000"})
    refuse_foreign_dirs(alice, 1000, _owners({"/home/alice": 1000}))  # not checked
