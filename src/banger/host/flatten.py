"""Flatten OCI layers into a directory tree, safely.

Each layer is a tar stream applied in order: whiteouts delete what lower layers made, opaque
directories hide their lower contents, hard links, symlinks, ownership, modes (setuid
included, see core.oci.entry_mode), xattrs and mtimes are kept. The target is only ever
touched through directory file descriptors opened with O_NOFOLLOW from the root down, after
core.oci.resolve_parents resolved the path inside the root, so no entry can write outside
it, whatever its name or the symlinks earlier entries planted. Device nodes are skipped
(the guest's /dev is a devtmpfs). Every entry and byte is charged against a size cap, so a
decompression bomb or a huge sparse file stops with a clear error instead of filling the
disk; so is the decompressed stream itself, headers included (host/tarlimits.py bounds
the extended headers tarfile would read whole).

As root the ownership lands in the tree directly (mkfs.ext4 -d copies it). Without root the
tree belongs to the caller; the wanted owner and mode of each entry are collected as
``fixups`` for debugfs to apply to the finished filesystem (see ``debugfs_script``).

Compressed layers are decompressed by a child process (gzip/pigz, zstd), which runs on
another core while this process extracts.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from banger.core.errors import ImageTooLarge, MissingTool, RegistryError, UnsafeLayer
from banger.core.oci import (
    ENTRY_COST,
    EntryKind,
    Parts,
    check_mtime,
    classify,
    entry_mode,
    keep_xattr,
    normalize_path,
    resolve_parents,
)
from banger.core.tarlimits import open_stream
from banger.core.units import format_size
from banger.host.safeio import CappedReader

log = logging.getLogger("banger.flatten")

_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_OPEN_DIRS = 512
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_LAYER_SLACK = 1 << 20
MAX_TRAILING = 16 << 20  # tar pads to its record size: kilobytes


@dataclass(frozen=True)
class Fixup:
    """Owner and mode an entry must get in the filesystem image (non-root flattening)."""

    path: str  # relative to the root, "/"-separated
    uid: int
    gid: int
    mode: int  # full st_mode, type bits included


@dataclass
class FlattenStats:
    entries: int = 0
    bytes: int = 0
    whiteouts: int = 0
    skipped: list[str] = field(default_factory=list)


class Flattener:
    """Applies layers to `root` (an empty directory this process owns, mode 0700)."""

    def __init__(
        self, root: Path, *, max_bytes: int, as_root: bool | None = None,
        on_skip: Callable[[str], None] | None = None,
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.as_root = os.geteuid() == 0 if as_root is None else as_root
        self.stats = FlattenStats()
        self._on_skip = on_skip or (lambda message: log.info("%s", message))
        self._root_fd = os.open(root, _DIR_FLAGS)
        self._dirs: dict[Parts, int] = {}
        self._layer_paths: set[Parts] = set()
        self._dir_mtimes: dict[Parts, float] = {}
        self._fixups: dict[Parts, Fixup] = {}
        # Everything tarfile reads counts, headers included, which the entries' cap never
        # sees. An entry's header and padding (under 1 KiB) fit in its ENTRY_COST; each
        # layer gets _LAYER_SLACK for its end blocks and extended headers.
        self._stream_left = max_bytes

    def close(self) -> None:
        self._forget_dirs()
        with contextlib.suppress(OSError):
            os.close(self._root_fd)

    def __enter__(self) -> Flattener:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- public -----------------------------------------------------------------------

    def apply_layer(self, stream: IO[bytes]) -> None:
        """Apply one uncompressed layer tar, read sequentially from `stream`."""
        self._layer_paths = set()
        self._stream_left += _LAYER_SLACK
        capped = CappedReader(stream, self._stream_left, self._stream_too_large)
        try:
            with open_stream(capped) as archive:
                for member in archive:
                    self._apply(archive, member)
        except tarfile.TarError as exc:
            raise UnsafeLayer(f"the layer is not a valid tar archive: {exc}") from None
        finally:
            self._stream_left -= capped.count

    def finish(self) -> list[Fixup]:
        """Restore directory mtimes (writing into a directory changes its own) and return
        the ownership fix-ups (empty as root)."""
        for parts in sorted(self._dir_mtimes, key=len, reverse=True):
            with contextlib.suppress(OSError):
                fd = self._open_dir(parts, create=False, missing_ok=True)
                if fd is not None:
                    os.utime(fd, (self._dir_mtimes[parts], self._dir_mtimes[parts]))
        self._forget_dirs()
        return [self._fixups[p] for p in sorted(self._fixups)]

    # -- entries ------------------------------------------------------------------------

    def _apply(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = normalize_path(member.name)
        check_mtime(member.name, member.mtime)
        kind, target = classify(parts)
        self.stats.entries += 1
        self._charge(ENTRY_COST)
        if kind is EntryKind.IGNORED:
            return
        if kind is EntryKind.WHITEOUT:
            self.stats.whiteouts += 1
            resolved = resolve_parents(target, self._readlink)
            parent = self._open_dir(resolved[:-1], create=False, missing_ok=True)
            if parent is not None:
                self._remove(parent, resolved[-1])
            return
        if kind is EntryKind.OPAQUE:
            self.stats.whiteouts += 1
            directory = resolve_parents((*target, "."), self._readlink)[:-1]
            self._make_opaque(directory)
            return
        resolved = resolve_parents(parts, self._readlink)
        if member.ischr() or member.isblk():
            self.stats.skipped.append(member.name)
            self._on_skip(f"skipped device node {member.name}")
            return
        if not (member.isdir() or member.isreg() or member.issym() or member.islnk()
                or member.isfifo()):
            self.stats.skipped.append(member.name)
            self._on_skip(f"skipped {member.name} (unsupported tar entry type {member.type!r})")
            return
        parent = self._dir(resolved[:-1])
        name = resolved[-1]
        self._layer_paths.add(resolved)
        if member.isdir():
            self._make_dir(parent, resolved, member)
        elif member.isreg():
            self._make_file(parent, resolved, member, archive)
        elif member.issym():
            self._replace(parent, name)
            os.symlink(member.linkname, name, dir_fd=parent)
            self._own(parent, name, resolved, member, stat.S_IFLNK)
            with contextlib.suppress(OSError):
                os.utime(name, (member.mtime, member.mtime), dir_fd=parent,
                         follow_symlinks=False)
        elif member.islnk():
            self._make_hardlink(parent, resolved, member)
        else:
            self._replace(parent, name)
            os.mkfifo(name, 0o600, dir_fd=parent)
            self._own(parent, name, resolved, member, stat.S_IFIFO)

    def _make_dir(self, parent: int, parts: Parts, member: tarfile.TarInfo) -> None:
        name = parts[-1]
        try:
            info = os.lstat(name, dir_fd=parent)
            if not stat.S_ISDIR(info.st_mode):
                self._replace(parent, name)
                os.mkdir(name, 0o700, dir_fd=parent)
        except FileNotFoundError:
            os.mkdir(name, 0o700, dir_fd=parent)
        self._fown(self._dir(parts), parts, member, stat.S_IFDIR)
        self._dir_mtimes[parts] = member.mtime

    def _make_file(
        self, parent: int, parts: Parts, member: tarfile.TarInfo, archive: tarfile.TarFile
    ) -> None:
        name = parts[-1]
        self._replace(parent, name)
        source = archive.extractfile(member)
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=parent)
        try:
            if source is not None:
                while True:
                    chunk = source.read(_CHUNK)
                    if not chunk:
                        break
                    self._charge(len(chunk))
                    self.stats.bytes += len(chunk)
                    _write_all(fd, chunk)
            self._fown(fd, parts, member, stat.S_IFREG)
            for key, value in member.pax_headers.items():
                if key.startswith("SCHILY.xattr."):
                    attr = key.removeprefix("SCHILY.xattr.")
                    if keep_xattr(attr):
                        with contextlib.suppress(OSError):
                            os.setxattr(fd, attr, value.encode("utf-8", "surrogateescape"))
            os.utime(fd, (member.mtime, member.mtime))
        finally:
            os.close(fd)

    def _make_hardlink(self, parent: int, parts: Parts, member: tarfile.TarInfo) -> None:
        target = resolve_parents(
            normalize_path(member.linkname, what="hard link target"), self._readlink
        )
        if not target:
            raise UnsafeLayer(f"hard link {member.name!r} points at the root")
        source_dir = self._open_dir(target[:-1], create=False, missing_ok=True)
        try:
            if source_dir is None:
                raise FileNotFoundError
            info = os.lstat(target[-1], dir_fd=source_dir)
        except FileNotFoundError:
            self.stats.skipped.append(member.name)
            self._on_skip(f"skipped hard link {member.name} (target {member.linkname} missing)")
            return
        if stat.S_ISDIR(info.st_mode):
            raise UnsafeLayer(f"hard link {member.name!r} points at a directory")
        with contextlib.suppress(FileNotFoundError):
            existing = os.lstat(parts[-1], dir_fd=parent)
            if (existing.st_dev, existing.st_ino) == (info.st_dev, info.st_ino):
                return
        self._replace(parent, parts[-1])
        # Replacing a directory may have closed cached descriptors: open both again.
        os.link(target[-1], parts[-1], src_dir_fd=self._dir(target[:-1]),
                dst_dir_fd=self._dir(parts[:-1]), follow_symlinks=False)

    def _make_opaque(self, directory: Parts) -> None:
        fd = self._open_dir(directory, create=False, missing_ok=True)
        if fd is None:
            return
        for child in os.listdir(fd):
            if (*directory, child) not in self._layer_paths:
                self._remove(fd, child)

    # -- ownership ----------------------------------------------------------------------

    def _fown(self, fd: int, parts: Parts, member: tarfile.TarInfo, kind: int) -> None:
        mode = entry_mode(member.mode)
        if self.as_root:
            os.fchown(fd, member.uid, member.gid)
            os.fchmod(fd, mode)  # after chown, which clears setuid/setgid
            return
        # The caller must be able to keep writing into its own directories.
        os.fchmod(fd, (mode | 0o700) if kind == stat.S_IFDIR else (mode & 0o777) | 0o600)
        self._fixups[parts] = Fixup("/".join(parts), member.uid, member.gid, kind | mode)

    def _own(
        self, parent: int, name: str, parts: Parts, member: tarfile.TarInfo, kind: int
    ) -> None:
        if self.as_root:
            os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
            if kind != stat.S_IFLNK:
                os.chmod(name, entry_mode(member.mode), dir_fd=parent)
            return
        mode = 0o777 if kind == stat.S_IFLNK else entry_mode(member.mode)
        self._fixups[parts] = Fixup("/".join(parts), member.uid, member.gid, kind | mode)

    # -- safe filesystem access ---------------------------------------------------------

    def _charge(self, amount: int) -> None:
        self.max_bytes -= amount
        if self.max_bytes < 0:
            raise ImageTooLarge(
                "the image is larger than the size limit once extracted "
                f"({format_size(self.stats.bytes)} of file data, {self.stats.entries} entries "
                "so far): refusing it (a decompression bomb or a huge sparse file?)"
            )

    def _stream_too_large(self) -> ImageTooLarge:
        return ImageTooLarge(
            "the image's layers are larger than the size limit once decompressed "
            f"({self.stats.entries} entries so far): refusing it (a decompression bomb?)"
        )

    def _readlink(self, parts: Parts) -> str | None:
        if parts in self._dirs:
            return None
        parent = self._open_dir(parts[:-1], create=False, missing_ok=True)
        if parent is None:
            return None
        try:
            return os.readlink(parts[-1], dir_fd=parent)
        except OSError:
            return None

    def _dir(self, parts: Parts) -> int:
        fd = self._open_dir(parts, create=True)
        assert fd is not None
        return fd

    def _open_dir(self, parts: Parts, *, create: bool, missing_ok: bool = False) -> int | None:
        """A descriptor of the directory at `parts`, reached with O_NOFOLLOW at every step
        (a symlink anywhere on the way fails with ELOOP instead of being followed)."""
        if not parts:
            return self._root_fd
        cached = self._dirs.get(parts)
        if cached is not None:
            return cached
        parent = self._open_dir(parts[:-1], create=create, missing_ok=missing_ok)
        if parent is None:
            return None
        name = parts[-1]
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                if missing_ok:
                    return None
                raise
            os.mkdir(name, 0o755, dir_fd=parent)
            self._layer_paths.add(parts)
            if not self.as_root:
                self._fixups[parts] = Fixup("/".join(parts), 0, 0, stat.S_IFDIR | 0o755)
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except OSError as exc:
            if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                if missing_ok:
                    return None
                raise UnsafeLayer(
                    f"{'/'.join(parts)!r} is not a directory, but the layer writes into it"
                ) from None
            raise
        if len(self._dirs) >= _MAX_OPEN_DIRS:
            self._forget_dirs()
        self._dirs[parts] = fd
        return fd

    def _forget_dirs(self) -> None:
        for fd in self._dirs.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._dirs.clear()

    def _replace(self, parent: int, name: str) -> None:
        """Make room for a new entry `name` (removing a file, link or a whole directory)."""
        self._remove(parent, name)

    def _remove(self, parent: int, name: str) -> None:
        try:
            info = os.lstat(name, dir_fd=parent)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(info.st_mode):
            # Descriptors below it would point at a deleted directory.
            self._forget_dirs_except(parent)
            shutil.rmtree(name, dir_fd=parent)
        else:
            os.unlink(name, dir_fd=parent)

    def _forget_dirs_except(self, keep: int) -> None:
        kept = {p: fd for p, fd in self._dirs.items() if fd == keep}
        for parts, fd in self._dirs.items():
            if parts not in kept:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._dirs = kept


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


# -- decompression ---------------------------------------------------------------------------


def _decompressor(head: bytes) -> list[str] | None:
    if head.startswith(_GZIP_MAGIC):
        tool = shutil.which("pigz") or shutil.which("gzip")
        if tool is None:
            raise MissingTool("gzip not found: needed for gzip layers", hint="apt-get install gzip")
        return [tool, "-dc"]
    if head.startswith(_ZSTD_MAGIC):
        tool = shutil.which("zstd")
        if tool is None:
            raise MissingTool("zstd not found: needed for zstd layers",
                              hint="apt-get install zstd")
        return [tool, "-dcq", "--no-progress"]
    return None


@contextlib.contextmanager
def open_layer(blob: Path) -> Iterator[IO[bytes]]:
    """The uncompressed tar stream of a layer blob (compression detected from its bytes)."""
    # Unbuffered, so seek(0) really rewinds the descriptor the child inherits.
    with open(blob, "rb", buffering=0) as raw:
        argv = _decompressor(raw.read(4))
        raw.seek(0)
        if argv is None:
            with open(blob, "rb") as plain:
                yield plain
            return
        proc = subprocess.Popen(
            argv, stdin=raw, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        yield proc.stdout
        # Drain what tar did not read (padding after the end-of-archive blocks), but not
        # endlessly: gigabytes of zeros after the end would only burn CPU under the lock.
        trailing = 0
        while chunk := proc.stdout.read(_CHUNK):
            trailing += len(chunk)
            if trailing > MAX_TRAILING:
                raise UnsafeLayer(f"layer {blob.name[:19]} has more than "
                                  f"{format_size(MAX_TRAILING)} of data after its end")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.stdout.close()
    error = proc.stderr.read().decode(errors="replace").strip()
    proc.stderr.close()
    if proc.wait() != 0:
        raise RegistryError(f"layer {blob.name[:19]} could not be decompressed: {error}")


# -- non-root ownership ----------------------------------------------------------------------


def debugfs_script(fixups: list[Fixup]) -> str:
    """debugfs commands that give each entry its owner and mode in the finished ext4 image
    (for trees flattened without root). Names with a quote or a newline cannot be expressed
    in a debugfs command and are left with the caller's ownership."""
    lines = []
    for fix in fixups:
        if '"' in fix.path or "\n" in fix.path:
            continue
        path = f'"/{fix.path}"'
        lines.append(f"set_inode_field {path} uid {fix.uid}")
        lines.append(f"set_inode_field {path} gid {fix.gid}")
        lines.append(f"set_inode_field {path} mode 0{fix.mode:o}")
    return "\n".join(lines) + "\n"
