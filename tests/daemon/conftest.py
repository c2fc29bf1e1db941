from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from banger.host import hostinfo
from tests.support.api import Api, serve
from tests.support.daemon_env import Env, ready_env


@pytest.fixture(autouse=True)
def qemu_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The start preflight looks for qemu; the fake hypervisor needs none."""
    monkeypatch.setattr(hostinfo, "which", lambda tool: f"/usr/bin/{tool}")


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    built = await ready_env(tmp_path)
    yield built
    built.services.store.close()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serve(tmp_path) as served:
        yield served
