"""What an interrupted operation leaves behind, swept when bangerd starts.

Every multi-step operation builds in a staging directory and renames it into place at the
end; a `kill -9` (or a power cut) in between leaves the staging directory with no record
pointing at it. Some hold secrets: a VM's `work-staging/` has the plaintext copy of the
`[[file_sync]]` entries and the guest's private host key until its work disk is made. Only
one bangerd runs per state directory (it holds bangerd.lock), so at start-up nothing is in
flight and whatever matches is a leftover."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable
from pathlib import Path

from banger.core.paths import Paths
from banger.core.vmdir import VMDir

log = logging.getLogger(__name__)

# Staging names, by the directory they are made in (see imageapi's promote, imagebundle's
# import, and the OCI and kernel pullers).
_STAGING_PATTERNS = (".*.promoting", ".import-*", ".*.pull-*")


def sweep_half_made(paths: Paths, vm_ids: Iterable[str]) -> list[Path]:
    """Remove staging directories and VM directories no record owns; returns what went."""
    known = set(vm_ids)
    found: list[Path] = []
    if paths.vms_dir.is_dir():
        for entry in paths.vms_dir.iterdir():
            if entry.name not in known:
                found.append(entry)  # created, then killed before its record was saved
            elif VMDir(entry).work_staging.exists():
                found.append(VMDir(entry).work_staging)
    for directory in (paths.images_dir, paths.state_dir / "kernels"):
        if directory.is_dir():
            for pattern in _STAGING_PATTERNS:
                found.extend(directory.glob(pattern))
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        log.info("removed %s, left by an interrupted operation", path)
    return found
