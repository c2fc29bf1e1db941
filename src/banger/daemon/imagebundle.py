"""`image export` / `image import`: move an image between machines as one bundle file.

The CLI passes host paths (the daemon shares the user's filesystem). The daemon may run as
root for a user, so it checks that the requesting user (the socket peer) could read the
bundle or write the output themselves, and gives the output file to them."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from banger.core.bundle import MEMBERS, image_metadata, imported_image, member_files
from banger.core.errors import InvalidInput, NameTaken, PermissionDenied
from banger.core.models import Image, ProgressEvent
from banger.core.names import validate_name
from banger.core.oci import default_size_cap
from banger.core.units import format_size
from banger.daemon.ociimages import free_bytes
from banger.daemon.progress import Progress
from banger.daemon.store import Store
from banger.host.bundle import Codec, read_bundle, write_bundle


@dataclass(frozen=True)
class Peer:
    """Who asked: the uid/gid of the process on the other end of the socket."""

    uid: int
    gid: int


class ImageBundles:
    def __init__(
        self, store: Store, images_dir: Path, codec: Codec, get_image: Callable[[str], Image],
    ) -> None:
        self._store = store
        self._dir = images_dir
        self._codec = codec
        self._get = get_image
        self._lock = asyncio.Lock()

    async def export(
        self, name: str, output: str, peer: Peer | None, progress: Progress
    ) -> dict[str, object]:
        image = self._get(name)
        out = _output_path(output, peer)
        files = member_files(image)
        if out.resolve().is_relative_to(self._dir.resolve()) or out.resolve() in {
            Path(p).resolve() for p in files.values()
        }:
            raise InvalidInput(f"{out} is inside banger's image store or is the image itself",
                               hint="write the bundle somewhere else")
        for path in files.values():
            if not Path(path).is_file():
                raise InvalidInput(f"image {name!r} is missing its file {path}",
                                   hint="pull or register the image again")
        tmp = out.with_name(f".{out.name}.partial")
        report = _Reporter(progress, "export", f"exporting {name}")
        started = time.monotonic()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            with open(fd, "wb") as f:
                if peer is not None and os.geteuid() == 0:
                    os.fchown(f.fileno(), peer.uid, peer.gid)
                manifest = await asyncio.to_thread(
                    write_bundle, files, image_metadata(image), f, self._codec, report
                )
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        size = out.stat().st_size
        progress(ProgressEvent(
            "export", f"exported {name} to {out} ({format_size(size)}) in "
            f"{time.monotonic() - started:.0f}s", 1.0,
        ))
        return {"image": name, "path": str(out), "bytes": size,
                "members": [m.name for m in manifest.members]}

    async def import_(
        self, bundle: str, as_name: str | None, peer: Peer | None, progress: Progress
    ) -> Image:
        source = _input_path(bundle, peer)
        if as_name is not None:
            validate_name(as_name)
            self._refuse_taken(as_name, renamed=True)
        # One import at a time: names are only known once the manifest (last) is read.
        async with self._lock:
            staging = self._dir / f".import-{os.getpid()}-{time.monotonic_ns()}"
            staging.mkdir(parents=True)
            report = _Reporter(progress, "import", f"importing {source.name}")
            started = time.monotonic()
            try:
                manifest = await asyncio.to_thread(
                    read_bundle, source, staging, self._codec, report,
                    default_size_cap(free_bytes(staging)),
                )
                name = as_name or validate_name(str(manifest.image.get("name", "")))
                self._refuse_taken(name, renamed=as_name is not None)
                final = self._dir / name
                shutil.rmtree(final, ignore_errors=True)  # an unrecorded leftover
                staging.rename(final)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            fields = {field: str(final / member) for field, member in MEMBERS.items()
                      if manifest.member(member) is not None}
            usage = sum(p.stat().st_blocks * 512 for p in final.iterdir() if p.is_file())
            image = imported_image(manifest, name, fields, usage, str(source))
            self._store.put_image(image)
        progress(ProgressEvent(
            "import", f"imported {name} ({format_size(usage)} on disk) in "
            f"{time.monotonic() - started:.0f}s", 1.0,
        ))
        kernel = image.kernel_name
        if not image.kernel and kernel and self._store.get_kernel(kernel) is None:
            progress(ProgressEvent(
                "warning", f"warning: the image boots kernel {image.kernel_name!r}, which is "
                f"not in this host's kernel store: `banger kernel pull {image.kernel_name}`",
            ))
        return image

    def _refuse_taken(self, name: str, *, renamed: bool) -> None:
        if self._store.get_image(name) is not None:
            raise NameTaken(
                f"image {name!r} already exists",
                hint="pick another name" if renamed else
                "import it under another name with --name, or delete the existing image",
            )


class _Reporter:
    """Turns byte counts from the worker thread into throttled progress events on the
    event loop (the stream's queue is not thread-safe)."""

    def __init__(self, progress: Progress, stage: str, what: str) -> None:
        self._progress = progress
        self._stage = stage
        self._what = what
        self._loop = asyncio.get_running_loop()
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last < 0.5 and done < total:
            return
        self._last = now
        fraction = done / total if total else 1.0
        event = ProgressEvent(
            self._stage, f"{self._what}: {format_size(done)} of {format_size(total)} "
            f"({fraction:.0%})", min(fraction, 1.0),
        )
        self._loop.call_soon_threadsafe(self._progress, event)


def _may(st: os.stat_result, peer: Peer | None, owner_bit: int, group_bit: int,
         other_bit: int) -> bool:
    if peer is None or peer.uid == 0 or os.geteuid() != 0:
        return True  # the daemon runs as the user: the kernel checks for us
    if st.st_uid == peer.uid:
        return bool(st.st_mode & owner_bit)
    if st.st_gid == peer.gid:
        return bool(st.st_mode & group_bit)
    return bool(st.st_mode & other_bit)


def _output_path(output: str, peer: Peer | None) -> Path:
    out = Path(output)
    if not out.is_absolute():
        raise InvalidInput(f"output path {output!r} is not absolute")
    parent = out.parent
    if not parent.is_dir():
        raise InvalidInput(f"{parent} is not a directory")
    if not _may(parent.stat(), peer, stat.S_IWUSR, stat.S_IWGRP, stat.S_IWOTH):
        raise PermissionDenied(f"you cannot write to {parent}", hint="choose another -o path")
    if out.is_symlink() or (out.exists() and not out.is_file()):
        raise InvalidInput(f"{out} exists and is not a regular file")
    if out.exists() and peer is not None and os.geteuid() == 0 and peer.uid not in (
        0, out.stat().st_uid
    ):
        raise PermissionDenied(f"{out} belongs to another user", hint="choose another -o path")
    return out


def _input_path(bundle: str, peer: Peer | None) -> Path:
    path = Path(bundle)
    if not path.is_absolute():
        raise InvalidInput(f"bundle path {bundle!r} is not absolute")
    if not path.is_file():
        raise InvalidInput(f"{bundle} does not exist or is not a file")
    if not _may(path.stat(), peer, stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH):
        raise PermissionDenied(f"you cannot read {bundle}")
    return path
