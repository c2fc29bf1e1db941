"""Building banger's own initrd (core/initrd.py says what it is) from a kernel's modules tree
and a static busybox: for catalog kernels (kernelpull.py, both from Debian packages) and for
the images banger builds (imagebuild.py, both from the image's own tree)."""

from __future__ import annotations

import gzip
import os
import stat
from functools import cache
from pathlib import Path

from banger.core.cpio import newc_archive
from banger.core.errors import ImageBuildFailed, ImageTooLarge
from banger.core.initrd import (
    EXTRA_MODULES,
    OVERLAY_MODULES,
    ROOT_MODULES,
    builtin_modules,
    initrd_files,
    is_static_executable,
    load_order,
    missing_modules,
    modinfo_depends,
    module_name,
)
from banger.core.units import format_size
from banger.host.safeio import decompress, read_regular, run_capped

# The largest Debian module (amdgpu) is ~20 MiB unpacked; busybox-static ~2 MiB.
_MAX_MODULE = 128 * 1024**2
_MAX_BUSYBOX = 64 * 1024**2


def module_bytes(path: Path) -> bytes:
    """A module file, decompressed: busybox's insmod takes plain .ko files. Only a regular
    file is read (a symlink would put a host file into the guest's initrd)."""
    data = read_regular(path, _MAX_MODULE)

    def too_large() -> ImageTooLarge:
        return ImageTooLarge(f"module {path.name} unpacks to more than "
                             f"{format_size(_MAX_MODULE)}", hint="use another kernel")

    if path.name.endswith(".xz"):
        return decompress("xz", data, _MAX_MODULE, too_large)
    if path.name.endswith(".zst"):
        unpacked = run_capped(["zstd", "-dcq"], data, _MAX_MODULE, too_large)
        if unpacked.returncode != 0:
            raise ImageBuildFailed(f"module {path.name} does not decompress")
        return unpacked.stdout
    if path.name.endswith(".gz"):
        return decompress("gzip", data, _MAX_MODULE, too_large)
    return data


def module_files(modules: Path) -> dict[str, str]:
    """Module name -> path under `modules` of every module that is a regular file reached
    through real directories: symlinks (to files or directories) are never followed."""
    found: dict[str, str] = {}
    for directory, _, names in os.walk(modules):
        for name in names:
            path = Path(directory, name)
            if ".ko" in name and stat.S_ISREG(os.lstat(path).st_mode):
                found[module_name(name)] = str(path.relative_to(modules))
    return found


def build_initrd(modules: Path, busybox: bytes) -> bytes:
    """The gzip'd initrd for the kernel whose modules tree (lib/modules/VERSION) is
    `modules`. Raises ImageBuildFailed if that kernel lacks a driver for the root disk
    (checked when the tree has a modules.builtin, as Debian's do)."""
    paths = module_files(modules)
    builtin_list = modules / "modules.builtin"
    if stat.S_ISREG(_lstat_mode(builtin_list)):
        builtin = builtin_modules(read_regular(builtin_list, _MAX_MODULE).decode(
            errors="replace"))
        missing = missing_modules(paths, builtin, ROOT_MODULES)
        if missing:
            raise ImageBuildFailed(
                f"kernel {modules.name} has no {', '.join(missing)} (module or built in)",
                hint="banger's initrd needs them to mount the root disk",
            )

    @cache
    def read(path: str) -> bytes:
        return module_bytes(modules / path)

    def depends(path: str) -> list[str]:
        return modinfo_depends(read(path))

    order = load_order(paths, depends, (*ROOT_MODULES, *EXTRA_MODULES))
    overlay = [p for p in load_order(paths, depends, OVERLAY_MODULES) if p not in order]
    files = initrd_files(busybox, [(p, read(p)) for p in order], [(p, read(p)) for p in overlay])
    return gzip.compress(newc_archive(files), compresslevel=6, mtime=0)


def _lstat_mode(path: Path) -> int:
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return 0


def find_in_tree(tree: Path, candidates: tuple[str, ...], *, directory: bool) -> Path | None:
    """The first candidate that exists in `tree` without leaving it through a symlink."""
    root = tree.resolve()
    for candidate in candidates:
        path = (tree / candidate).resolve()
        if not path.is_relative_to(root):
            continue
        if path.is_dir() if directory else path.is_file():
            return path
    return None


def tree_initrd(tree: Path, kernel_version: str) -> bytes:
    """banger's initrd for an image tree: its kernel's modules and its busybox-static.
    Raises ImageBuildFailed (with why) when the tree lacks either."""
    modules = find_in_tree(tree, (f"usr/lib/modules/{kernel_version}",
                              f"lib/modules/{kernel_version}"), directory=True)
    if modules is None:
        raise ImageBuildFailed(f"the image has no modules for kernel {kernel_version}")
    busybox = find_in_tree(tree, ("usr/bin/busybox", "bin/busybox"), directory=False)
    if busybox is None:
        raise ImageBuildFailed("the image has no busybox (package busybox-static)")
    data = read_regular(busybox, _MAX_BUSYBOX)
    if not is_static_executable(data):
        raise ImageBuildFailed("the image's busybox is not static (package busybox-static)")
    return build_initrd(modules, data)
