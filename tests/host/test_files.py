"""Sparse file copies."""

from __future__ import annotations

from pathlib import Path

from banger.host.files import sparse_copy


def test_sparse_copy_of_an_empty_file(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"")
    sparse_copy(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "b").read_bytes() == b""
