"""One uid per VMM: claimed from the reserved range per VM dir, skipping ids the host knows
and ids other VMs hold, kept across starts, given back on release, stale claims retaken."""

from __future__ import annotations

from pathlib import Path

import pytest

from banger.core.confine import RunAs, uid_range
from banger.core.errors import HostError
from banger.host.vmmuser import ClaimedVMMUids, host_ids_in


def uids(tmp_path: Path, ids: range = range(5000, 5004), *, known: set[int] | None = None,
         root: bool = True) -> ClaimedVMMUids:
    return ClaimedVMMUids(ids, tmp_path / "registry", known_to_host=lambda uid: uid in (
        known or set()), is_root=lambda: root)


def vm_dir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "vms" / name
    path.mkdir(parents=True)
    return path


async def test_each_vm_gets_its_own_uid_and_keeps_it(tmp_path: Path) -> None:
    claims = uids(tmp_path)
    one, two = vm_dir(tmp_path, "one"), vm_dir(tmp_path, "two")
    assert await claims.run_as(one) == RunAs(5000, 5000)
    assert await claims.run_as(two) == RunAs(5001, 5001)
    assert await claims.run_as(one) == RunAs(5000, 5000)
    # Another daemon sharing the registry sees the same claims.
    assert await uids(tmp_path).run_as(two) == RunAs(5001, 5001)


async def test_ids_the_host_knows_are_skipped(tmp_path: Path) -> None:
    claims = uids(tmp_path, known={5000, 5001})
    assert await claims.run_as(vm_dir(tmp_path, "one")) == RunAs(5002, 5002)


async def test_a_daemon_that_is_not_root_leaves_root_daemons_registry_alone(
    tmp_path: Path,
) -> None:
    (tmp_path / "registry").mkdir(mode=0)  # a root daemon's: not openable by this one
    uids(tmp_path, root=False).release(vm_dir(tmp_path, "one"))
    assert not (tmp_path / "registry" / ".lock").exists()


async def test_a_released_uid_goes_to_the_next_vm(tmp_path: Path) -> None:
    claims = uids(tmp_path)
    one = vm_dir(tmp_path, "one")
    await claims.run_as(one)
    claims.release(one)
    claims.release(one)  # idempotent
    assert await claims.run_as(vm_dir(tmp_path, "two")) == RunAs(5000, 5000)


async def test_a_claim_whose_vm_dir_is_gone_is_taken_again(tmp_path: Path) -> None:
    claims = uids(tmp_path, range(5000, 5001))
    gone = vm_dir(tmp_path, "gone")
    await claims.run_as(gone)
    gone.rmdir()
    assert await claims.run_as(vm_dir(tmp_path, "new")) == RunAs(5000, 5000)


async def test_a_full_range_is_a_clear_error(tmp_path: Path) -> None:
    claims = uids(tmp_path, range(5000, 5001))
    await claims.run_as(vm_dir(tmp_path, "one"))
    with pytest.raises(HostError, match="every VMM uid in 5000-5000 is taken"):
        await claims.run_as(vm_dir(tmp_path, "two"))


async def test_no_uid_when_not_root_or_turned_off(tmp_path: Path) -> None:
    assert await uids(tmp_path, root=False).run_as(vm_dir(tmp_path, "a")) is None
    off = uids(tmp_path, range(0))
    assert await off.run_as(vm_dir(tmp_path, "b")) is None
    off.release(tmp_path / "vms" / "b")
    assert not (tmp_path / "registry").exists()
    (tmp_path / "registry").mkdir(mode=0o700)  # root's, from a root daemon
    uids(tmp_path, root=False).release(tmp_path / "vms" / "a")
    assert list((tmp_path / "registry").iterdir()) == []


def test_the_default_range_is_unused_on_this_host() -> None:
    assert host_ids_in(uid_range("1900000000-1900065535")) == []
    assert host_ids_in(range(0, 1)) == [0]
