"""Building banger's own initrd (core/initrd.py says what it is) from a kernel's modules tree
and a static busybox: for catalog kernels (kernelpull.py, both from Debian packages) and for
the images banger builds (imagebuild.py, both from the image's own tree)."""

from __future__ import annotations

import gzip
import lzma
import subprocess
from functools import cache
from pathlib import Path

from banger.core.cpio import newc_archive
from banger.core.errors import ImageBuildFailed
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


def module_bytes(path: Path) -> bytes:
    """A module file, decompressed: busybox's insmod takes plain .ko files."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".zst"):
        return subprocess.run(["zstd", "-dcq"], input=data, capture_output=True,
                              check=True).stdout
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    return data


def build_initrd(modules: Path, busybox: bytes) -> bytes:
    """The gzip'd initrd for the kernel whose modules tree (lib/modules/VERSION) is
    `modules`. Raises ImageBuildFailed if that kernel lacks a driver for the root disk
    (checked when the tree has a modules.builtin, as Debian's do)."""
    paths = {module_name(p.name): str(p.relative_to(modules))
             for p in modules.rglob("*.ko*") if p.is_file()}
    builtin_list = modules / "modules.builtin"
    if builtin_list.is_file():
        builtin = builtin_modules(builtin_list.read_text(errors="replace"))
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


def _in_tree(tree: Path, candidates: tuple[str, ...], *, directory: bool) -> Path | None:
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
    modules = _in_tree(tree, (f"usr/lib/modules/{kernel_version}",
                              f"lib/modules/{kernel_version}"), directory=True)
    if modules is None:
        raise ImageBuildFailed(f"the image has no modules for kernel {kernel_version}")
    busybox = _in_tree(tree, ("usr/bin/busybox", "bin/busybox"), directory=False)
    if busybox is None:
        raise ImageBuildFailed("the image has no busybox (package busybox-static)")
    data = busybox.read_bytes()
    if not is_static_executable(data):
        raise ImageBuildFailed("the image's busybox is not static (package busybox-static)")
    return build_initrd(modules, data)
