"""`image pull <reference>`: fetch an OCI image, flatten its layers into a tree, inject the
guest boot contract and write the tree to a raw ext4 file.

Layers download concurrently into the blob cache (host/oci.py) while earlier ones are being
extracted, in order, by the flattener (host/flatten.py). The tree lives in a 0700 work
directory next to the destination, so nothing in it (setuid files included) is reachable
by other host users, and the destination appears only when the image is complete.

The boot contract is the same one the Debian builder bakes in (imagetree.customize_tree).
That code uses ordinary paths, so for an untrusted tree it runs in a child process chrooted
into the tree: an image's symlinks (an /etc pointing at the host's /etc) then resolve
inside the image, never on the host. Without root there is no chroot; the tree is then
refused if any directory customisation touches is a symlink.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from banger.core.errors import (
    BangerError,
    ImageBuildFailed,
    ImageTooLarge,
    MissingTool,
    UnsafeLayer,
)
from banger.core.imagerecipe import image_size_bytes, mkfs_command
from banger.core.models import ProgressEvent
from banger.core.oci import Reference
from banger.core.perlkit import PerlKit
from banger.core.units import format_size
from banger.host import imagetree
from banger.host.flatten import Flattener, debugfs_script, open_layer
from banger.host.oci import (
    STAGE,
    BlobCache,
    LayerProgress,
    RegistryClient,
    docker_config_path,
    load_docker_config,
)
from banger.host.perlkit import HostPerlKit, PerlKitSource
from banger.host.processes import CommandRunner

ProgressSink = Callable[[ProgressEvent], None]

# Directories customize_tree writes into or reads from (checked when it cannot be chrooted).
_TOUCHED_DIRS = (
    "etc", "etc/ssh", "etc/ssh/sshd_config.d", "etc/systemd", "etc/systemd/system",
    "etc/systemd/system-generators", "etc/default", "usr", "usr/local", "usr/local/lib",
    "usr/local/lib/banger", "var", "var/lib", "var/lib/dbus", "lib", "lib/systemd",
    "lib/systemd/system", "usr/lib", "usr/lib/systemd", "usr/lib/systemd/system",
    "usr/lib/banger", "usr/lib/banger/perl",
)
_SYSTEMD_PATHS = ("lib/systemd/systemd", "usr/lib/systemd/systemd")
# Customisation writes a few dozen small files (well under a second); the rest is a hang.
CUSTOMIZE_DEADLINE = 120.0


@dataclass(frozen=True)
class PulledImage:
    rootfs: Path
    kernel: Path | None  # the image's own kernel and initrd, when it carries them in /boot
    initrd: Path | None
    reference: str
    digest: str
    layers: int
    size_bytes: int
    downloaded_bytes: int
    has_sshd: bool
    has_systemd: bool


class ImagePuller(Protocol):
    async def pull(
        self, *, reference: Reference, dest_dir: Path, max_bytes: int, progress: ProgressSink
    ) -> PulledImage: ...


class OCIPuller:
    def __init__(
        self, cache_dir: Path, *, insecure: tuple[str, ...] = (),
        docker_config: Path | None = None, mkfs: str = "mkfs.ext4",
        runner: CommandRunner | None = None, perl_kits: PerlKitSource | None = None,
    ) -> None:
        self._runner = runner  # runs docker credential helpers
        self._perl_kits = perl_kits or HostPerlKit()
        self._cache = BlobCache(cache_dir)
        self._insecure = insecure
        self._docker_config = docker_config
        self._mkfs = mkfs
        self._as_root = os.geteuid() == 0

    async def pull(
        self, *, reference: Reference, dest_dir: Path, max_bytes: int, progress: ProgressSink
    ) -> PulledImage:
        if shutil.which(self._mkfs) is None:
            raise MissingTool(f"{self._mkfs} not found", hint="apt-get install e2fsprogs")
        dest_dir = dest_dir.absolute()
        dest_dir.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.pull-", dir=dest_dir.parent))
        try:
            pulled = await self._pull(reference, dest_dir, work, max_bytes, progress)
        finally:
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, work, True))
        return pulled

    async def _pull(
        self, ref: Reference, dest_dir: Path, work: Path, max_bytes: int,
        progress: ProgressSink,
    ) -> PulledImage:
        tree = work / "tree"
        tree.mkdir(mode=0o755)
        credentials = load_docker_config(self._docker_config or docker_config_path())
        progress(ProgressEvent(STAGE, f"resolving {ref}", 0.0))
        async with RegistryClient(
            self._cache, credentials=credentials, insecure=self._insecure, runner=self._runner
        ) as client:
            resolved = await client.resolve(ref)
            manifest = resolved.manifest
            if manifest.total_size > max_bytes:
                # Compressed layers alone over the cap: refused before any download.
                raise ImageTooLarge(
                    f"{ref}'s layers are {format_size(manifest.total_size)} compressed, over "
                    f"the size limit of {format_size(max_bytes)}"
                )
            count = len(manifest.layers)
            progress(ProgressEvent(
                STAGE, f"{ref}: {count} layers, {format_size(manifest.total_size)} "
                f"({resolved.digest[:19]})", 0.01,
            ))
            meter = LayerProgress(manifest, progress)
            downloads = [
                asyncio.create_task(client.fetch_blob(ref, layer, meter.for_layer(index)))
                for index, layer in enumerate(manifest.layers)
            ]
            skipped: list[str] = []
            try:
                with Flattener(tree, max_bytes=max_bytes, on_skip=skipped.append) as flat:
                    for index, download in enumerate(downloads):
                        blob = await download
                        progress(ProgressEvent(
                            STAGE, f"extracting layer {index + 1}/{count}",
                            0.6 + 0.2 * index / max(1, count),
                        ))
                        await asyncio.to_thread(_apply, flat, blob)
                    fixups = flat.finish()
            finally:
                for download in downloads:
                    download.cancel()
                await asyncio.gather(*downloads, return_exceptions=True)
            downloaded = client.downloaded_bytes
        if skipped:
            progress(ProgressEvent(
                "warning", f"warning: skipped {len(skipped)} entries (device nodes and the "
                f"like), e.g. {skipped[0]}",
            ))
        has_systemd = any(_is_file(tree, p) for p in _SYSTEMD_PATHS)
        has_sshd = await asyncio.to_thread(imagetree.has_sshd, tree)
        progress(ProgressEvent(STAGE, "installing the banger boot contract", 0.82))
        await asyncio.to_thread(self._customize, tree)
        kernel = _image_kernel(tree)
        size = image_size_bytes(
            await asyncio.to_thread(imagetree.tree_size_bytes, tree)
        )
        progress(ProgressEvent(STAGE, f"writing rootfs.ext4 ({size // (1024 * 1024)} MiB)", 0.85))
        final = work / "image"
        final.mkdir()
        rootfs = final / "rootfs.ext4"
        await _run(mkfs_command(
            tree=tree, output=rootfs, size_bytes=size, mkfs=self._mkfs
        ), "mkfs.ext4")
        if fixups:
            script = work / "ownership.debugfs"
            script.write_text(debugfs_script(fixups))
            await _run(["debugfs", "-w", "-f", str(script), str(rootfs)], "debugfs")
        kernel_path = initrd_path = None
        if kernel is not None:
            kernel_path, initrd_path = final / "vmlinuz", final / "initrd.img"
            _copy_plain(kernel[0], kernel_path)
            _copy_plain(kernel[1], initrd_path)
        if dest_dir.exists():
            dest_dir.rmdir()
        final.rename(dest_dir)
        return PulledImage(
            rootfs=dest_dir / "rootfs.ext4",
            kernel=dest_dir / "vmlinuz" if kernel_path else None,
            initrd=dest_dir / "initrd.img" if initrd_path else None,
            reference=str(ref),
            digest=resolved.digest,
            layers=count,
            size_bytes=size,
            downloaded_bytes=downloaded,
            has_sshd=has_sshd,
            has_systemd=has_systemd,
        )

    def _customize(self, tree: Path) -> None:
        # Read on the host, before any chroot: an image without perl gets the host's.
        kit = None if imagetree.has_perl(tree) else self._perl_kits.kit()
        if self._as_root:
            customize_chrooted(tree, perl_kit=kit)
            return
        for directory in _TOUCHED_DIRS:
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISLNK(os.lstat(tree / directory).st_mode):
                    raise UnsafeLayer(
                        f"/{directory} in the image is a symlink; banger cannot safely add "
                        "its boot files without root",
                        hint="run bangerd as root to import this image",
                    )
        imagetree.customize_tree(tree, strict=False, perl_kit=kit)


def _apply(flattener: Flattener, blob: Path) -> None:
    with open_layer(blob) as stream:
        flattener.apply_layer(stream)


def customize_chrooted(
    tree: Path, deadline: float = CUSTOMIZE_DEADLINE, *, perl_kit: PerlKit | None = None,
) -> None:
    """customize_tree(strict=False) in a forked child chrooted into `tree` (needs root).
    A child still running after `deadline` seconds is killed: whatever the tree holds, the
    pull (and the image lock it holds) ends."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its outcome is checked by the parent
        code = 1
        try:
            os.close(read_fd)
            os.chroot(tree)
            os.chdir("/")
            imagetree.customize_tree(Path("/"), strict=False, perl_kit=perl_kit)
            code = 0
        except BaseException as exc:
            message = exc.message if isinstance(exc, BangerError) else (
                f"{type(exc).__name__}: {exc}"
            )
            with contextlib.suppress(OSError):
                os.write(write_fd, message.encode()[-4000:])
        finally:
            os._exit(code)
    os.close(write_fd)
    try:
        error = _read_until_eof(read_fd, time.monotonic() + deadline)
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise ImageBuildFailed(
            f"installing the boot contract into the image took over {deadline:.0f} s",
            hint="the image is malformed or malicious (a FIFO where a file should be?)",
        ) from None
    finally:
        os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise ImageBuildFailed(
            f"installing the boot contract into the image failed: {error or 'no details'}"
        )


def _read_until_eof(fd: int, until: float) -> str:
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([fd], [], [], max(0.0, until - time.monotonic()))
        if not ready:
            raise TimeoutError
        chunk = os.read(fd, 4096)
        if not chunk:
            return b"".join(chunks).decode(errors="replace").strip()
        chunks.append(chunk)


def _is_file(tree: Path, relative: str) -> bool:
    with contextlib.suppress(OSError):
        return stat.S_ISREG(os.lstat(tree / relative).st_mode)
    return False


def _image_kernel(tree: Path) -> tuple[Path, Path] | None:
    """The newest /boot/vmlinuz-* with its initrd, if the image carries a kernel. Symlinks
    are not followed (they would resolve on the host)."""
    boot = tree / "boot"
    try:
        if not stat.S_ISDIR(os.lstat(boot).st_mode):
            return None
    except FileNotFoundError:
        return None
    try:
        _, vmlinuz, initrd = imagetree.find_kernel(tree)
    except ImageBuildFailed:
        return None
    if _is_file(tree, f"boot/{vmlinuz.name}") and _is_file(tree, f"boot/{initrd.name}"):
        return vmlinuz, initrd
    return None


def _copy_plain(source: Path, target: Path) -> None:
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


async def _run(argv: list[str], what: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        tail = out.decode(errors="replace").strip()[-2000:]
        raise ImageBuildFailed(f"{what} failed (exit status {proc.returncode}): {tail}",
                               hint="check free disk space")
