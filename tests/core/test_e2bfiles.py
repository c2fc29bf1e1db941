"""Guest listings for the E2B endpoint: the find command, its parsing, watch events."""

from __future__ import annotations

import subprocess
from pathlib import Path

from banger.core.e2bfiles import MISSING_MARK, listing_command, parse_listing, watch_events


def listing(path: Path, depth: int) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["/bin/sh", "-c", listing_command(str(path), depth)],
                          capture_output=True, check=False)


def test_the_listing_parses_into_entry_infos(tmp_path: Path) -> None:
    (tmp_path / "dir\twith tab").mkdir()
    (tmp_path / "dir\twith tab" / "f").write_bytes(b"12345")
    (tmp_path / "link").symlink_to("dir\twith tab")
    entries = {e.name: e for e in parse_listing(listing(tmp_path, 2).stdout)}
    assert set(entries) == {"dir\twith tab", "f", "link"}
    info = entries["f"].info()
    assert (info["type"], info["size"], info["permissions"][0]) == ("FILE_TYPE_FILE", "5", "-")
    assert entries["dir\twith tab"].info()["type"] == "FILE_TYPE_DIRECTORY"
    assert entries["link"].info()["symlinkTarget"] == "dir\twith tab"
    [itself] = parse_listing(listing(tmp_path, 0).stdout)
    assert itself.path == str(tmp_path)


def test_a_missing_path_is_marked(tmp_path: Path) -> None:
    proc = listing(tmp_path / "nope", 1)
    assert proc.returncode == 2
    assert MISSING_MARK.encode() in proc.stderr


def test_watch_events_between_two_listings(tmp_path: Path) -> None:
    (tmp_path / "kept").write_text("a")
    (tmp_path / "gone").write_text("a")
    before = {e.path: e for e in parse_listing(listing(tmp_path, 1).stdout)}
    (tmp_path / "gone").unlink()
    (tmp_path / "new").write_text("b")
    (tmp_path / "kept").write_text("longer")
    after = {e.path: e for e in parse_listing(listing(tmp_path, 1).stdout)}
    events = sorted((e["name"], e["type"]) for e in watch_events(str(tmp_path), before, after))
    assert events == [("gone", "EVENT_TYPE_REMOVE"), ("kept", "EVENT_TYPE_WRITE"),
                      ("new", "EVENT_TYPE_CREATE")]
