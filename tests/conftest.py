"""Shared unit-test setup: every test gets its own HOME and XDG directories, so nothing reads
or writes the real user's banger config, state or daemon socket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests run on loaded CI machines too: no per-example deadline, and a modest count.
settings.register_profile("banger", deadline=None, max_examples=100)
settings.load_profile("banger")


@pytest.fixture(autouse=True)
def isolated_home(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Path | None]:
    # End-to-end tests build their own environments for the daemons they start.
    if request.node.get_closest_marker("e2e") is not None:
        yield None
        return
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(home / "run"))
    for remote in ("BANGER_HOST", "BANGER_CONTEXT", "BANGER_SSH_COMMAND"):
        monkeypatch.delenv(remote, raising=False)
    yield home
