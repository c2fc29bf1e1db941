"""After a kill -9 at any point, the next bangerd removes what no record owns."""

from __future__ import annotations

from pathlib import Path

from banger.daemon.leftovers import sweep_half_made
from tests.daemon.conftest import make_paths


def test_half_made_things_go_and_owned_things_stay(tmp_path: Path) -> None:
    paths = make_paths(tmp_path)
    kept_vm = paths.vms_dir / "aaaaaaaaaaaa"
    (kept_vm / "work-staging" / ".ssh").mkdir(parents=True)
    (kept_vm / "work-staging" / "secret").write_text("aws key")
    (kept_vm / "work.ext4").write_text("disk")
    orphan_vm = paths.vms_dir / "bbbbbbbbbbbb"
    (orphan_vm / "work-staging").mkdir(parents=True)
    kernels = paths.state_dir / "kernels"
    leftovers = [
        paths.images_dir / ".web.promoting",
        paths.images_dir / ".import-123-456",
        paths.images_dir / ".ubuntu-24-04.pull-x1y2",
        kernels / ".generic-6-12.pull-abc",
    ]
    kept = [paths.images_dir / "debian-bookworm", kernels / "generic-6-12"]
    for path in leftovers + kept:
        path.mkdir(parents=True)

    removed = sweep_half_made(paths, ["aaaaaaaaaaaa"])

    assert sorted(removed) == sorted([*leftovers, orphan_vm, kept_vm / "work-staging"])
    assert not any(p.exists() for p in removed)
    assert all(p.exists() for p in kept)
    assert (kept_vm / "work.ext4").read_text() == "disk"


def test_a_fresh_state_dir_has_nothing_to_sweep(tmp_path: Path) -> None:
    assert sweep_half_made(make_paths(tmp_path), []) == []
