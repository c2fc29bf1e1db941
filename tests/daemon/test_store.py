from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from banger.core.models import VM, Image, VMSpec, VMState
from banger.daemon.store import Store


def vm(vm_id: str, name: str, **changes: object) -> VM:
    record = VM(
        id=vm_id, name=name, image="debian-bookworm", state=VMState.CREATED,
        spec=VMSpec(2, 1024, 8 << 30), ip="172.16.0.2", mac="02:00:00:00:00:01",
        tap=f"bgr{vm_id}", dir=f"/state/vms/{vm_id}", backend="qemu", created_at=1.5,
    )
    return replace(record, **changes)  # type: ignore[arg-type]


def image(name: str) -> Image:
    return Image(
        name=name, rootfs="/i/rootfs.ext4", kernel="/i/vmlinuz", initrd=None, managed=True,
        created_at=2.0, source="catalog: Debian bookworm", size_bytes=123,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "state" / "banger.db")
    yield opened
    opened.close()


def test_vm_round_trip(store: Store) -> None:
    record = vm("aaaaaaaaaaaa", "dev", state=VMState.RUNNING, pid=42, nat=True)
    store.put_vm(record)
    assert store.get_vm("dev") == record
    assert store.get_vm("aaaaaaaaaaaa") == record
    assert store.get_vm("nope") is None


def test_update_and_rename(store: Store) -> None:
    store.put_vm(vm("aaaaaaaaaaaa", "dev"))
    store.put_vm(vm("aaaaaaaaaaaa", "renamed", state=VMState.STOPPED))
    assert store.get_vm("dev") is None
    assert store.get_vm("renamed") is not None
    assert [v.name for v in store.list_vms()] == ["renamed"]


def test_list_is_ordered_by_name(store: Store) -> None:
    for vm_id, name in [("1", "zeta"), ("2", "alpha"), ("3", "mid")]:
        store.put_vm(vm(vm_id, name))
    assert [v.name for v in store.list_vms()] == ["alpha", "mid", "zeta"]


def test_names_are_unique(store: Store) -> None:
    store.put_vm(vm("1", "dev"))
    with pytest.raises(sqlite3.IntegrityError):
        store.put_vm(vm("2", "dev"))


def test_a_name_wins_over_an_id(store: Store) -> None:
    store.put_vm(vm("abc", "first"))
    store.put_vm(vm("other", "abc"))
    found = store.get_vm("abc")
    assert found is not None and found.id == "other"


def test_delete_vm(store: Store) -> None:
    store.put_vm(vm("1", "dev"))
    store.delete_vm("1")
    assert store.list_vms() == []
    store.delete_vm("1")


def test_images(store: Store) -> None:
    store.put_image(image("b"))
    store.put_image(image("a"))
    assert [i.name for i in store.list_images()] == ["a", "b"]
    store.put_image(replace(image("a"), size_bytes=999))
    assert store.get_image("a") == replace(image("a"), size_bytes=999)
    store.delete_image("a")
    assert store.get_image("a") is None
    assert [i.name for i in store.list_images()] == ["b"]


def test_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "banger.db"
    first = Store(path)
    first.put_vm(vm("1", "dev"))
    first.put_image(image("a"))
    first.close()
    second = Store(path)
    assert [v.name for v in second.list_vms()] == ["dev"]
    assert [i.name for i in second.list_images()] == ["a"]
    second.close()


def test_schema_version_is_recorded(tmp_path: Path) -> None:
    path = tmp_path / "banger.db"
    Store(path).close()
    with sqlite3.connect(path) as db:
        version = db.execute("PRAGMA user_version").fetchone()[0]
    assert version >= 1
    # Opening again does not re-run migrations (they would fail on existing tables).
    Store(path).close()


def test_unknown_fields_from_a_newer_daemon_are_ignored(store: Store, tmp_path: Path) -> None:
    store.put_vm(vm("1", "dev"))
    db = sqlite3.connect(tmp_path / "state" / "banger.db")
    db.execute(
        "UPDATE vms SET data = json_set(data, '$.future_field', 1) WHERE id = '1'"
    )
    db.commit()
    db.close()
    assert store.get_vm("dev") == vm("1", "dev")
