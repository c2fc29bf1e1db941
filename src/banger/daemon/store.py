"""The store: SQLite, one row per VM and per image, the single source of truth.

Rows hold the record as JSON next to the columns we query by; the schema version lives in
`PRAGMA user_version` and migrations run in order at open."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

from banger.core.e2bwire import SandboxRecord, record_from_dict
from banger.core.models import (
    VM,
    Image,
    Kernel,
    image_from_dict,
    kernel_from_dict,
    to_dict,
    vm_from_dict,
)

# Each migration is a list of statements run in one transaction (not executescript, which
# commits on its own and would break the all-or-nothing upgrade).
_MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE vms (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, data TEXT NOT NULL)",
        "CREATE TABLE images (name TEXT PRIMARY KEY, data TEXT NOT NULL)",
    ],
    ["CREATE TABLE kernels (name TEXT PRIMARY KEY, data TEXT NOT NULL)"],
    ["CREATE TABLE e2b_sandboxes (id TEXT PRIMARY KEY, data TEXT NOT NULL)"],
]


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        for index in range(version, len(_MIGRATIONS)):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _MIGRATIONS[index]:
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {index + 1}")
                self._db.execute("COMMIT")
            except Exception:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self._db.close()

    # VMs
    def put_vm(self, vm: VM) -> None:
        self._db.execute(
            "INSERT INTO vms (id, name, data) VALUES (?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET name = excluded.name, data = excluded.data",
            (vm.id, vm.name, json.dumps(to_dict(vm))),
        )

    def get_vm(self, name_or_id: str) -> VM | None:
        row = self._db.execute(
            "SELECT data FROM vms WHERE name = ? OR id = ? ORDER BY name = ? DESC LIMIT 1",
            (name_or_id, name_or_id, name_or_id),
        ).fetchone()
        return vm_from_dict(json.loads(row[0])) if row else None

    def list_vms(self) -> list[VM]:
        rows = self._db.execute("SELECT data FROM vms ORDER BY name").fetchall()
        return [vm_from_dict(json.loads(row[0])) for row in rows]

    def delete_vm(self, vm_id: str) -> None:
        self._db.execute("DELETE FROM vms WHERE id = ?", (vm_id,))

    # Images
    def put_image(self, image: Image) -> None:
        self._db.execute(
            "INSERT INTO images (name, data) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET data = excluded.data",
            (image.name, json.dumps(to_dict(image))),
        )

    def get_image(self, name: str) -> Image | None:
        row = self._db.execute("SELECT data FROM images WHERE name = ?", (name,)).fetchone()
        return image_from_dict(json.loads(row[0])) if row else None

    def list_images(self) -> list[Image]:
        rows = self._db.execute("SELECT data FROM images ORDER BY name").fetchall()
        return [image_from_dict(json.loads(row[0])) for row in rows]

    def delete_image(self, name: str) -> None:
        self._db.execute("DELETE FROM images WHERE name = ?", (name,))

    # Kernels
    def put_kernel(self, kernel: Kernel) -> None:
        self._db.execute(
            "INSERT INTO kernels (name, data) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET data = excluded.data",
            (kernel.name, json.dumps(to_dict(kernel))),
        )

    def get_kernel(self, name: str) -> Kernel | None:
        row = self._db.execute("SELECT data FROM kernels WHERE name = ?", (name,)).fetchone()
        return kernel_from_dict(json.loads(row[0])) if row else None

    def list_kernels(self) -> list[Kernel]:
        rows = self._db.execute("SELECT data FROM kernels ORDER BY name").fetchall()
        return [kernel_from_dict(json.loads(row[0])) for row in rows]

    def delete_kernel(self, name: str) -> None:
        self._db.execute("DELETE FROM kernels WHERE name = ?", (name,))

    # Sandboxes of the E2B-compatible endpoint
    def put_sandbox(self, record: SandboxRecord) -> None:
        self._db.execute(
            "INSERT INTO e2b_sandboxes (id, data) VALUES (?, ?) "
            "ON CONFLICT(id) DO UPDATE SET data = excluded.data",
            (record.sandbox_id, json.dumps(dataclasses.asdict(record))),
        )

    def list_sandboxes(self) -> list[SandboxRecord]:
        rows = self._db.execute("SELECT data FROM e2b_sandboxes ORDER BY id").fetchall()
        return [record_from_dict(json.loads(row[0])) for row in rows]

    def delete_sandbox(self, sandbox_id: str) -> None:
        self._db.execute("DELETE FROM e2b_sandboxes WHERE id = ?", (sandbox_id,))
