"""WorkspaceService: the daemon's record of which git checkouts were copied into a VM and
from which commit. The copy itself streams from the client over ssh (the daemon need not share
the client's filesystem); the daemon keeps the facts `vm workspace export` needs later."""

from __future__ import annotations

import time
from dataclasses import replace

from banger.core.errors import NotFound
from banger.core.models import Workspace
from banger.core.workspace import check_commit, guest_path
from banger.daemon.store import Store
from banger.daemon.vms import VMService


class WorkspaceService:
    def __init__(self, store: Store, vms: VMService) -> None:
        self._store = store
        self._vms = vms

    def record(self, name: str, workspace: Workspace) -> Workspace:
        """Remember `workspace`, replacing any earlier one at the same guest path. No await
        between reading and writing the row, so no other VM update can interleave."""
        recorded = replace(
            workspace,
            guest_path=guest_path(workspace.guest_path),
            base_commit=check_commit(workspace.base_commit),
            prepared_at=workspace.prepared_at or time.time(),
        )
        vm = self._vms.get(name)
        others = [w for w in vm.workspaces if w.guest_path != recorded.guest_path]
        self._store.put_vm(replace(vm, workspaces=[*others, recorded]))
        return recorded

    def of_vm(self, name: str) -> list[Workspace]:
        return list(self._vms.get(name).workspaces)

    def get(self, name: str, path: str) -> Workspace:
        wanted = guest_path(path)
        for workspace in self.of_vm(name):
            if workspace.guest_path == wanted:
                return workspace
        raise NotFound(
            f"no workspace recorded at {wanted} in {name}",
            hint=f"banger vm workspace prepare {name} [PATH] --guest-path {wanted}, "
                 "or pass --base COMMIT",
        )
