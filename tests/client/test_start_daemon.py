"""The CLI starting bangerd as root does not touch another user's directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from banger.client import Client
from banger.core.errors import PermissionDenied
from banger.core.paths import paths_from_env


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root banger checks ownership")
def test_root_refuses_to_start_a_daemon_in_another_users_home(tmp_path: Path) -> None:
    home = tmp_path / "alice"
    home.mkdir()
    os.chown(home, 1000, 1000)
    paths = paths_from_env({"HOME": str(home), "XDG_RUNTIME_DIR": str(tmp_path / "run")})
    with pytest.raises(PermissionDenied) as info:
        Client(paths).start_daemon()
    assert "owned by uid 1000" in info.value.message
    assert list(home.iterdir()) == []  # not even the log or the state dir
