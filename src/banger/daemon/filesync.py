"""Staging `[[file_sync]]` entries onto a new VM's work disk (the staging directory that
`mkfs.ext4 -d` turns into the disk). A source that is missing or unreadable is a warning,
never a failed create: the VM is still useful without it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from banger.core.config import FileSync
from banger.core.filesync import DEFAULT_FILE_MODE, DIR_MODE


def stage_file_sync(entries: Sequence[FileSync], staging: Path, home: Path) -> list[str]:
    """Copy each entry below `staging`; return the warnings. Files get the entry's mode (else
    0600), directories 0700. Nothing already staged is replaced: banger's own files (staged
    first) and earlier entries win."""
    warnings: list[str] = []
    for entry in entries:
        source = _host_path(entry.host, home)
        target = staging / entry.relative_guest_path
        mode = entry.file_mode if entry.file_mode is not None else DEFAULT_FILE_MODE
        if not source.exists():
            warnings.append(f"file_sync: {entry.host} does not exist on the host; skipped")
            continue
        try:
            if source.is_dir():
                _copy_tree(source, target, mode, entry, warnings)
            else:
                _copy_file(source, target, mode, entry, warnings)
        except OSError as exc:
            warnings.append(
                f"file_sync: could not copy {entry.host}: {exc.strerror or exc}; skipped"
            )
    return warnings


def _host_path(host: str, home: Path) -> Path:
    if host == "~" or host.startswith("~/"):
        return home / host[2:]
    return Path(os.path.expanduser(host))


def _copy_file(
    source: Path, target: Path, mode: int, entry: FileSync, warnings: list[str]
) -> None:
    if target.exists() or target.is_symlink():
        warnings.append(f"file_sync: {entry.guest} is already on the work disk; "
                        f"{source} not copied")
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    target.chmod(mode)


def _copy_tree(
    source: Path, target: Path, mode: int, entry: FileSync, warnings: list[str]
) -> None:
    for directory, subdirs, files in os.walk(source):
        here = Path(directory)
        destination = target / here.relative_to(source)
        destination.mkdir(parents=True, exist_ok=True)
        destination.chmod(DIR_MODE)
        for name in subdirs:
            if (here / name).is_symlink():  # os.walk does not follow these: say so
                warnings.append(f"file_sync: {here / name} is a symlink to a directory; "
                                "skipped")
        for name in files:
            path = here / name
            if not path.exists():  # a dangling symlink
                continue
            try:
                _copy_file(path, destination / name, mode, entry, warnings)
            except OSError as exc:
                warnings.append(
                    f"file_sync: could not copy {path}: {exc.strerror or exc}; skipped"
                )
