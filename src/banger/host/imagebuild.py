"""Build the default Debian image: mmdebstrap a tree, bake in the guest boot contract, write
the tree to a raw ext4 file, take the kernel out of the image itself and build banger's
initrd from the image's modules and busybox. What goes in (packages, command lines) is
core/imagerecipe.py; what is done to the tree is imagetree.py.

Layout of a build: everything happens in a temporary directory next to ``dest_dir`` (the tree
and the outputs), and ``dest_dir`` appears only when the image is complete, so a failed or
cancelled build leaves nothing behind.

mmdebstrap always runs in ``--mode=unshare``: as root that only unshares the mount namespace
(ownership stays right, and the chroot's /proc, /sys and /dev mounts die with the process
instead of lingering on the host if a build is killed). Without root, mmdebstrap also unshares
the user namespace (it needs subuid/subgid ranges), the tree is owned by subordinate ids, and
the steps that touch it run inside the same mapping through ``mmdebstrap --unshare-helper``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from banger.core.errors import ImageBuildFailed, MissingTool
from banger.core.imagerecipe import (
    PACKAGES,
    RECIPE_VERSION,
    STAGE,
    image_size_bytes,
    mkfs_command,
    mmdebstrap_command,
    parse_progress,
)
from banger.core.models import ProgressEvent
from banger.host.imagetree import customize_tree, find_kernel, installed_packages, tree_size_bytes
from banger.host.initrd import tree_initrd

_STDERR_TAIL = 15


@dataclass(frozen=True)
class BuiltImage:
    rootfs: Path
    kernel: Path
    initrd: Path
    kernel_version: str
    # Installed packages as ``name=version``, sorted.
    packages: tuple[str, ...]
    size_bytes: int
    recipe_version: str = RECIPE_VERSION


ProgressSink = Callable[[ProgressEvent], None]


class ImageBuilder(Protocol):
    async def build(
        self,
        *,
        suite: str,
        dest_dir: Path,
        apt_sources: Sequence[str],
        progress: ProgressSink,
    ) -> BuiltImage: ...


# -- the real builder ---------------------------------------------------------------------


@dataclass
class _RunResult:
    returncode: int
    tail: list[str] = field(default_factory=list)


class DebianImageBuilder:
    """Builds a Debian image with mmdebstrap and mkfs.ext4 (see the module docstring)."""

    def __init__(
        self,
        *,
        mmdebstrap: str = "mmdebstrap",
        mkfs: str = "mkfs.ext4",
        packages: Sequence[str] = PACKAGES,
    ) -> None:
        self._mmdebstrap = mmdebstrap
        self._mkfs = mkfs
        self._packages = tuple(packages)
        self._as_root = os.geteuid() == 0

    async def build(
        self,
        *,
        suite: str,
        dest_dir: Path,
        apt_sources: Sequence[str],
        progress: ProgressSink,
    ) -> BuiltImage:
        mmdebstrap = self._tool(self._mmdebstrap, "mmdebstrap")
        mkfs = self._tool(self._mkfs, "e2fsprogs")
        dest_dir = dest_dir.absolute()
        if dest_dir.exists() and (not dest_dir.is_dir() or any(dest_dir.iterdir())):
            raise ImageBuildFailed(
                f"{dest_dir} already exists and is not empty",
                hint="delete the old image first",
            )
        dest_dir.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.build-", dir=dest_dir.parent))
        tree = work / "tree"
        out = work / "out"
        tree.mkdir()
        out.mkdir()
        if not self._as_root:
            # Steps inside the user namespace run as a subordinate uid and write here.
            out.chmod(0o777)
        try:
            progress(ProgressEvent(STAGE, f"bootstrapping Debian {suite} with mmdebstrap", 0.0))
            argv = mmdebstrap_command(
                suite=suite,
                target=tree,
                apt_sources=apt_sources,
                packages=self._packages,
                mmdebstrap=mmdebstrap,
            )
            await self._check(argv, "mmdebstrap", progress, forward=True)

            progress(ProgressEvent(STAGE, "installing the banger boot contract", 0.82))
            if self._as_root:
                customize_tree(tree)
            else:
                await self._check(
                    self._in_namespace(
                        [sys.executable, "-m", "banger.host.imagetree", "customize", str(tree)]
                    ),
                    "customising the image",
                    progress,
                )

            version, vmlinuz, initrd = find_kernel(tree)
            packages = installed_packages(tree)
            size = image_size_bytes(tree_size_bytes(tree))
            progress(
                ProgressEvent(STAGE, f"writing rootfs.ext4 ({size // (1024 * 1024)} MiB)", 0.85)
            )
            made = out / "rootfs.ext4"
            await self._check(
                self._in_namespace(
                    mkfs_command(tree=tree, output=made, size_bytes=size, mkfs=mkfs)
                ),
                "mkfs.ext4",
                progress,
            )
            final = work / "image"
            final.mkdir()
            rootfs = final / "rootfs.ext4"
            if self._as_root:
                made.rename(rootfs)
            else:
                # Made by a subordinate uid: copy it so the image belongs to this user.
                await self._check(
                    ["cp", "--sparse=always", str(made), str(rootfs)], "copying rootfs", progress
                )
            shutil.copyfile(vmlinuz, final / "vmlinuz")
            await self._write_initrd(tree, version, initrd, final / "initrd.img", progress)
            await self._remove_tree(tree)
            if dest_dir.exists():
                dest_dir.rmdir()
            final.rename(dest_dir)
        except BaseException:
            await asyncio.shield(self._cleanup(work))
            raise
        await self._cleanup(work)
        progress(ProgressEvent(STAGE, f"image ready: Debian {suite}, kernel {version}", 1.0))
        return BuiltImage(
            rootfs=dest_dir / "rootfs.ext4",
            kernel=dest_dir / "vmlinuz",
            initrd=dest_dir / "initrd.img",
            kernel_version=version,
            packages=packages,
            size_bytes=size,
        )

    @staticmethod
    async def _write_initrd(
        tree: Path, version: str, stock: Path, target: Path, progress: ProgressSink
    ) -> None:
        """banger's initrd from the tree, else (with a warning) the tree's own."""
        progress(ProgressEvent(STAGE, "building the initrd", 0.95))
        try:
            data = await asyncio.to_thread(tree_initrd, tree, version)
        except (ImageBuildFailed, OSError) as exc:
            reason = exc.message if isinstance(exc, ImageBuildFailed) else str(exc)
            progress(ProgressEvent(
                "warning", f"warning: {reason}; the image keeps its initramfs-tools initrd, "
                "which boots a few seconds slower"
            ))
            shutil.copyfile(stock, target)
            return
        target.write_bytes(data)

    @staticmethod
    def _tool(name: str, package: str) -> str:
        found = shutil.which(name)
        if found is None:
            raise MissingTool(
                f"{name} not found on PATH",
                hint=f"install it (apt-get install {package}), or run `banger doctor`",
            )
        return found

    def _in_namespace(self, argv: list[str]) -> list[str]:
        if self._as_root:
            return argv
        return [self._mmdebstrap, "--unshare-helper", *argv]

    async def _remove_tree(self, tree: Path) -> None:
        if not tree.exists():
            return
        if self._as_root:
            _refuse_mounts_under(tree)
            await asyncio.to_thread(shutil.rmtree, tree)
        else:
            await _run(self._in_namespace(["rm", "-rf", "--one-file-system", str(tree)]), None)

    async def _cleanup(self, work: Path) -> None:
        with contextlib.suppress(Exception):
            await self._remove_tree(work / "tree")
        with contextlib.suppress(Exception):
            _refuse_mounts_under(work)
            await asyncio.to_thread(shutil.rmtree, work, True)

    async def _check(
        self, argv: list[str], what: str, progress: ProgressSink, *, forward: bool = False
    ) -> None:
        result = await _run(argv, progress if forward else None)
        if result.returncode != 0:
            tail = "\n".join(result.tail) or "(no output)"
            raise ImageBuildFailed(
                f"{what} failed (exit status {result.returncode}):\n{tail}",
                hint="check that the Debian mirror is reachable (or set `debian_mirror` in "
                "config) and that there is free disk space, then run `banger image pull` again",
            )


def _refuse_mounts_under(path: Path) -> None:
    """Never recurse into a mount (a leftover bind of the host's /dev would be wiped)."""
    prefix = str(path.resolve()).rstrip("/") + "/"
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text(encoding="utf-8")
    except OSError:
        return
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and (fields[4] + "/").startswith(prefix):
            raise ImageBuildFailed(
                f"{fields[4]} is still mounted; not deleting {path}",
                hint=f"unmount it (umount -R {fields[4]}) and delete {path} by hand",
            )


async def _run(argv: list[str], progress: ProgressSink | None) -> _RunResult:
    """Run argv without a shell, keep the last stderr lines, forward progress lines.
    Cancelling the caller kills the whole process group."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    tail: deque[str] = deque(maxlen=_STDERR_TAIL)
    assert proc.stderr is not None
    try:
        async for raw in proc.stderr:
            line = raw.decode("utf-8", errors="replace").rstrip()
            if not line:
                continue
            tail.append(line)
            if progress is not None:
                event = parse_progress(line)
                if event is not None:
                    progress(event)
        returncode = await proc.wait()
    except BaseException:
        await asyncio.shield(_kill_group(proc))
        raise
    return _RunResult(returncode, list(tail))


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(proc.wait(), grace)
            return
        except TimeoutError:
            continue


# -- a fake for unit tests of the services --------------------------------------------------


class FakeImageBuilder:
    """Writes small placeholder files instead of building; records each call."""

    def __init__(self, *, fail_with: Exception | None = None) -> None:
        self.fail_with = fail_with
        self.calls: list[dict[str, object]] = []

    async def build(
        self,
        *,
        suite: str,
        dest_dir: Path,
        apt_sources: Sequence[str],
        progress: ProgressSink,
    ) -> BuiltImage:
        self.calls.append({"suite": suite, "dest_dir": dest_dir, "apt_sources": list(apt_sources)})
        progress(ProgressEvent(STAGE, f"bootstrapping Debian {suite} (fake)", 0.0))
        if self.fail_with is not None:
            raise self.fail_with
        dest_dir.mkdir(parents=True, exist_ok=True)
        rootfs = dest_dir / "rootfs.ext4"
        with rootfs.open("wb") as handle:
            handle.truncate(64 * 1024 * 1024)
        (dest_dir / "vmlinuz").write_bytes(b"fake kernel")
        (dest_dir / "initrd.img").write_bytes(b"fake initrd")
        progress(ProgressEvent(STAGE, "image ready (fake)", 1.0))
        return BuiltImage(
            rootfs=rootfs,
            kernel=dest_dir / "vmlinuz",
            initrd=dest_dir / "initrd.img",
            kernel_version="0.0.0-fake",
            packages=tuple(f"{name}=0" for name in sorted(PACKAGES)),
            size_bytes=64 * 1024 * 1024,
        )
