"""Directories as tar streams on the client's side of `vm cp`: `pack` a local directory
into one (read as it is sent, any size), and `unpack` one that came out of a guest.

A guest is not trusted with the host's files, so `unpack` writes only below its
destination: every member's path is relative, without `..`; each directory on the way is
opened with O_NOFOLLOW from the one above (a symlink the archive made earlier cannot
redirect a later member), files are created with O_EXCL after an old entry is unlinked;
symlinks pointing outside the destination, devices, FIFOs and the like are skipped and
reported, hard links may only point at a file unpacked earlier; set-id bits are dropped
and nothing is chowned. Extended headers are bounded (core/tarlimits.py); file data is
streamed, never held whole."""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from banger.core.errors import InvalidInput, UnsafeGuestTar
from banger.core.tarlimits import open_stream

_BLOCK = tarfile.BLOCKSIZE
_PIECE = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def pack(root: Path) -> Iterator[bytes]:
    """The contents of local directory `root` as a tar stream (members `.` and below):
    directories, regular files and symlinks, owned by root; other files are left out."""
    yield _header(".", root.lstat(), tarfile.DIRTYPE)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            path = Path(dirpath) / name
            arcname = str(path.relative_to(root))
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue  # gone since it was listed
            if stat.S_ISLNK(st.st_mode):
                yield _header(arcname, st, tarfile.SYMTYPE, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                yield _header(arcname, st, tarfile.DIRTYPE)
            elif stat.S_ISREG(st.st_mode):
                yield from _file(path, arcname)
    yield b"\0" * (2 * _BLOCK)


def _header(arcname: str, st: os.stat_result, kind: bytes, target: str = "",
            size: int = 0) -> bytes:
    info = tarfile.TarInfo(arcname)
    info.type, info.linkname, info.size = kind, target, size
    info.mode, info.mtime = st.st_mode & 0o7777, int(st.st_mtime)
    info.uname = info.gname = "root"
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _file(path: Path, arcname: str) -> Iterator[bytes]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        yield _header(arcname, st, tarfile.REGTYPE, size=st.st_size)
        left = st.st_size
        while left:  # exactly the size announced, even if the file changes meanwhile
            piece = f.read(min(left, _PIECE)) or b"\0" * min(left, _PIECE)
            left -= len(piece)
            yield piece
    if st.st_size % _BLOCK:
        yield b"\0" * (_BLOCK - st.st_size % _BLOCK)


@dataclass
class Unpacked:
    """What `unpack` left out: members that are not files, directories or links, and
    symlinks that point outside the destination."""

    skipped: list[str] = field(default_factory=list)


class _Chunks:
    """A read() over an iterable of byte strings, for tarfile's stream mode."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            piece = next(self._chunks, None)
            if piece is None:
                break
            self._buffer += piece
        if size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def unpack(chunks: Iterable[bytes], destination: Path) -> Unpacked:
    """Unpack the tar stream `chunks` (from a guest: untrusted) into `destination`, which
    is made if missing (its parent must exist); what is there already is replaced."""
    with contextlib.suppress(FileExistsError):
        destination.mkdir(mode=0o755)
    try:
        root = os.open(destination, _DIR_FLAGS)
    except OSError as exc:
        raise InvalidInput(f"cannot write into {destination}: {exc.strerror}") from None
    unpacker = _Unpacker(root)
    try:
        with open_stream(_Chunks(chunks)) as tar:
            for member in tar:
                unpacker.add(tar, member)
        unpacker.set_dir_modes()
    except tarfile.TarError as exc:
        raise UnsafeGuestTar(f"the tar from the guest is broken: {exc}") from None
    except OSError as exc:
        raise InvalidInput(f"cannot write into {destination}: {exc}") from None
    finally:
        os.close(root)
    return unpacker.unpacked


class _Unpacker:
    def __init__(self, root: int) -> None:
        self._root = root
        self._files: set[tuple[str, ...]] = set()  # for hard links
        self._dir_modes: list[tuple[tuple[str, ...], int]] = []
        self.unpacked = Unpacked()

    def add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = _parts(member.name)
        if member.isdir():
            self._dir_modes.append((parts, member.mode & 0o777))
        if not parts:
            return
        parent = _open_dirs(self._root, parts[:-1])
        try:
            self._add(tar, member, parent, parts)
        finally:
            os.close(parent)

    def set_dir_modes(self) -> None:
        """Last, deepest first: a read-only directory is filled before it becomes one."""
        for parts, mode in reversed(self._dir_modes):
            fd = _open_dirs(self._root, parts)
            try:
                os.fchmod(fd, mode)
            finally:
                os.close(fd)

    def _add(self, tar: tarfile.TarFile, member: tarfile.TarInfo, parent: int,
             parts: tuple[str, ...]) -> None:
        name, leaf = "/".join(parts), parts[-1]
        if member.isdir():
            with contextlib.suppress(FileExistsError):
                os.mkdir(leaf, 0o700, dir_fd=parent)
            os.close(_open_dirs(parent, (leaf,)))  # a directory, not a symlink to one
        elif member.isreg():
            _clear(parent, leaf)
            fd = os.open(leaf, _FILE_FLAGS, 0o600, dir_fd=parent)
            with os.fdopen(fd, "wb") as out:
                source = tar.extractfile(member)
                assert source is not None  # a regular file has data
                while piece := source.read(_PIECE):
                    out.write(piece)
                out.flush()
                os.fchmod(fd, member.mode & 0o777)
                os.utime(fd, (member.mtime, member.mtime))
            self._files.add(parts)
        elif member.issym():
            if not _stays_inside(parts, member.linkname):
                self.unpacked.skipped.append(f"{name} -> {member.linkname}")
                return
            _clear(parent, leaf)
            os.symlink(member.linkname, leaf, dir_fd=parent)
        elif member.islnk():
            target = _parts(member.linkname)
            if target not in self._files:
                raise UnsafeGuestTar(f"the tar from the guest links {name} to "
                                     f"{member.linkname}, not a file it holds")
            source_dir = _open_dirs(self._root, target[:-1])
            try:
                _clear(parent, leaf)
                os.link(target[-1], leaf, src_dir_fd=source_dir, dst_dir_fd=parent,
                        follow_symlinks=False)
            finally:
                os.close(source_dir)
            self._files.add(parts)
        else:
            self.unpacked.skipped.append(name)


def _parts(name: str) -> tuple[str, ...]:
    """The path components of a member name; refuses an absolute one or one with `..`."""
    if name.startswith("/") or "\0" in name:
        raise UnsafeGuestTar(f"the tar from the guest holds an absolute path: {name[:200]}")
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if ".." in parts:
        raise UnsafeGuestTar(f"the tar from the guest climbs out with `..`: {name[:200]}")
    return parts


def _stays_inside(parts: tuple[str, ...], target: str) -> bool:
    """Whether a symlink at `parts` pointing at `target` resolves below the destination
    (lexically: the links it may cross are checked the same way)."""
    if not target or target.startswith("/"):
        return False
    resolved = posixpath.normpath(posixpath.join("/".join(parts[:-1]) or ".", target))
    return resolved != ".." and not resolved.startswith("../")


def _open_dirs(fd: int, parts: tuple[str, ...]) -> int:
    """The directory `parts` below `fd`, opened one step at a time without following a
    symlink (made when missing: a tar may omit a member's parents)."""
    current = os.dup(fd)
    try:
        for part in parts:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=current)
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=current)
            except OSError as exc:
                raise UnsafeGuestTar(f"the tar from the guest writes through {part!r}, "
                                     f"not a directory ({exc.strerror})") from None
            os.close(current)
            current = child
    except BaseException:
        os.close(current)
        raise
    return current


def _clear(parent: int, leaf: str) -> None:
    """Make room for a new entry: an old file or symlink goes (a directory stays, and the
    creation that follows fails on it)."""
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISDIR(os.lstat(leaf, dir_fd=parent).st_mode):
            os.unlink(leaf, dir_fd=parent)
