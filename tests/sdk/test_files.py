"""sb.files over a fake client: each call is the client's, and errors carry SDK hints."""

from __future__ import annotations

import pytest

from banger.core.errors import GuestPathNotFound
from banger.sdk.sandbox import Sandbox
from tests.sdk.fakeclient import FakeClient


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox.create(name="f", client=FakeClient())  # type: ignore[arg-type]


def test_write_read_stat_list_rename_remove(sandbox: Sandbox) -> None:
    files = sandbox.files
    assert files.mkdir("/root/d").type == "dir"
    files.write("/root/d/a.txt", "hi", mode=0o600, owner="nobody")
    entry = files.stat("/root/d/a.txt")
    assert (entry.type, entry.size, entry.mode, entry.owner) == ("file", 2, 0o600, "nobody")
    assert [e.name for e in files.list("/root/d")] == ["a.txt"]
    assert files.rename("/root/d/a.txt", "/root/d/b.txt").path == "/root/d/b.txt"
    assert files.read_text("/root/d/b.txt") == "hi"
    assert files.exists("/root/d/b.txt") and not files.exists("/root/d/a.txt")
    files.remove("/root/d", recursive=True)
    assert sandbox.client.calls[-1] == ("remove_file", ("/root/d", True))  # type: ignore[attr-defined]


def test_a_missing_path_names_it_and_hints_at_files_list(sandbox: Sandbox) -> None:
    with pytest.raises(GuestPathNotFound) as raised:
        sandbox.files.stat("/nope")
    assert "/nope" in raised.value.message
    assert "sb.files.list" in raised.value.hint
