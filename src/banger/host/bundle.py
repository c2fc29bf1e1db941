"""Writing and reading image bundles (see banger.core.bundle): tar streamed through a
compression Codec, sha256 computed on the way. `write_bundle` and `read_bundle` block;
`stream_bundle` and `unpack_stream` run them in a worker thread at the end of a pipe, so a
bundle travels through the API (export to, import from the client) as it is made or read.

The real codec is the `zstd` binary (multithreaded, and it squeezes the zeros of a sparse
root filesystem to almost nothing); tests use a codec that stores bytes as they are.
Import writes zero runs as holes, so a sparse rootfs stays sparse."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import tarfile
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Protocol

from banger.core.bundle import (
    MANIFEST,
    Manifest,
    Member,
    check_member_name,
    parse_manifest,
    verify,
)
from banger.core.errors import BadBundle, HostError, ImageTooLarge, MissingTool
from banger.core.tarlimits import open_stream
from banger.core.units import format_size
from banger.host.safeio import CappedReader

_CHUNK = 1 << 20
_BLOCK = 64 << 10  # hole granularity on import
_ZEROS = bytes(_CHUNK)
_MANIFEST_MAX = 1 << 20
_MAX_TRAILING = 16 << 20


class Codec(Protocol):
    def compress(self, out: IO[bytes]) -> contextlib.AbstractContextManager[IO[bytes]]:
        """A writable stream whose bytes reach `out` compressed."""
        ...

    def decompress(self, src: IO[bytes]) -> contextlib.AbstractContextManager[IO[bytes]]:
        """A readable stream of `src` decompressed. `src` must have a file descriptor (a
        pipe will do): the codec may hand it to a subprocess."""
        ...


class ZstdCodec:
    def __init__(self, binary: str = "zstd", level: int = 3) -> None:
        self._bin = binary
        self._level = level

    def _which(self) -> str:
        path = shutil.which(self._bin)
        if path is None:
            raise MissingTool(f"{self._bin} not found on PATH",
                              hint="apt-get install zstd (image export/import need it)")
        return path

    @contextlib.contextmanager
    def compress(self, out: IO[bytes]) -> Iterator[IO[bytes]]:
        proc = subprocess.Popen(
            [self._which(), "-q", f"-{self._level}", "-T0", "-c"],
            stdin=subprocess.PIPE, stdout=out, stderr=subprocess.PIPE,
        )
        assert proc.stdin is not None
        try:
            yield proc.stdin
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.stdin.close()
        err = _stderr(proc)
        if proc.wait() != 0:
            raise HostError(f"zstd failed: {err or f'exit {proc.returncode}'}")

    @contextlib.contextmanager
    def decompress(self, src: IO[bytes]) -> Iterator[IO[bytes]]:
        proc = subprocess.Popen(
            [self._which(), "-q", "-d", "-c"],
            stdin=src, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        failure: BaseException | None = None
        try:
            yield proc.stdout
            trailing = 0  # tar's end padding: let zstd finish cleanly, within reason
            while chunk := proc.stdout.read(_CHUNK):
                trailing += len(chunk)
                if trailing > _MAX_TRAILING:
                    raise BadBundle("the bundle has data after its end")
        except BaseException as exc:
            failure = exc
            try:  # zstd that hit a bad frame exits on its own: its message is the better one
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()  # still writing: the failure is ours, not the data's
        proc.stdout.close()
        err = _stderr(proc)
        code = proc.wait()
        # zstd's own complaint (corrupt or truncated frame) explains a broken tar stream.
        if code not in (0, -signal.SIGKILL) and not isinstance(failure, KeyboardInterrupt):
            raise BadBundle(
                f"the bundle does not decompress: {err or f'zstd exit {code}'}"
            ) from failure
        if failure is not None:
            raise failure


def _stderr(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stderr is not None
    text = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    return " ".join(text.replace("*stdin*", "bundle").split())[:300]


class _Hashing:
    """A reader that hashes what passes through."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.sha256.update(data)
        self.size += len(data)
        return data


def write_bundle(
    files: dict[str, str], metadata: dict[str, object], out: IO[bytes], codec: Codec,
) -> Manifest:
    """Stream `files` (member name -> path) and then the manifest into `out`."""
    members: list[Member] = []
    with codec.compress(out) as stream, \
            tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.copybufsize = _CHUNK  # type: ignore[attr-defined]  # the default 16 KiB makes a multi-GiB export crawl
        for name, path in files.items():
            with open(path, "rb") as f:
                info = tarfile.TarInfo(name)
                info.size = os.fstat(f.fileno()).st_size
                info.mode = 0o644
                info.mtime = int(os.fstat(f.fileno()).st_mtime)
                reader = _Hashing(f)
                tar.addfile(info, reader)
            members.append(Member(name, reader.size, reader.sha256.hexdigest()))
        manifest = Manifest(dict(metadata), members)
        raw = manifest.to_json()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode = len(raw), 0o644
        tar.addfile(info, _BytesReader(raw))
    return manifest


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    def read(self, n: int = -1) -> bytes:
        n = len(self._data) if n < 0 else n
        chunk, self._data = bytes(self._data[:n]), self._data[n:]
        return chunk


def read_bundle(
    src: IO[bytes], dest: Path, codec: Codec, max_bytes: int | None = None,
) -> Manifest:
    """Unpack the bundle read from `src` (a file or a pipe) into the (existing, empty) dir
    `dest` and verify every member against the manifest. Raises BadBundle on anything off;
    the caller removes `dest` then.
    `max_bytes` caps the decompressed stream (ImageTooLarge past it): holes are cheap on
    disk, but a crafted bundle could still make an image of any size."""
    found: dict[str, Member] = {}
    raw_manifest: bytes | None = None
    try:
        with codec.decompress(src) as stream, open_stream(_capped(stream, max_bytes)) as tar:
            for info in tar:
                check_member_name(info.name)
                if not info.isreg():
                    raise BadBundle(f"bundle member {info.name!r} is not a regular file")
                if info.name in found or (info.name == MANIFEST and raw_manifest):
                    raise BadBundle(f"the bundle holds {info.name!r} twice")
                data = tar.extractfile(info)
                assert data is not None
                if info.name == MANIFEST:
                    if info.size > _MANIFEST_MAX:
                        raise BadBundle("the bundle's manifest is implausibly large")
                    raw_manifest = data.read()
                    continue
                found[info.name] = _write_sparse(data, dest / info.name)
    except tarfile.TarError as exc:
        raise BadBundle(f"the bundle is not a readable tar stream: {exc}") from exc
    except EOFError as exc:
        raise BadBundle("the bundle ends early (truncated)") from exc
    except OSError as exc:
        if isinstance(exc, FileNotFoundError | PermissionError):
            raise
        raise HostError(f"cannot unpack the bundle: {exc}") from exc
    if raw_manifest is None:
        raise BadBundle("the bundle has no manifest (truncated, or not a banger bundle)")
    manifest = parse_manifest(raw_manifest)
    verify(manifest, found)
    return manifest


def _capped(stream: IO[bytes], max_bytes: int | None) -> IO[bytes] | CappedReader:
    if max_bytes is None:
        return stream
    return CappedReader(stream, max_bytes, lambda: ImageTooLarge(
        f"the bundle unpacks to more than {format_size(max_bytes)}: refusing it"))


def _write_sparse(data: IO[bytes], target: Path) -> Member:
    digest = hashlib.sha256()
    size = 0
    with open(target, "wb") as out:
        while True:
            chunk = data.read(_CHUNK)
            if not chunk:
                break
            digest.update(chunk)
            view = memoryview(chunk)
            if chunk == _ZEROS[: len(chunk)]:
                out.seek(len(chunk), os.SEEK_CUR)
            else:
                for start in range(0, len(chunk), _BLOCK):
                    block = view[start:start + _BLOCK]
                    if block == _ZEROS[: len(block)]:
                        out.seek(len(block), os.SEEK_CUR)
                    else:
                        out.write(block)
            size += len(chunk)
        out.truncate(size)  # a trailing hole
    return Member(target.name, size, digest.hexdigest())


async def stream_bundle(
    files: dict[str, str], metadata: dict[str, object], codec: Codec,
) -> AsyncGenerator[bytes, None]:
    """The bundle of `files`, piece by piece as `write_bundle` makes it in a worker thread.
    The pipe between them is the back-pressure: a slow reader slows the writer. Closing the
    generator early stops the writer (its next write fails: the pipe has no reader)."""
    read_fd, write_fd = os.pipe()

    def write() -> Manifest:
        with open(write_fd, "wb") as out:
            return write_bundle(files, metadata, out, codec)

    reader = asyncio.StreamReader(limit=_CHUNK)
    pipe = open(read_fd, "rb", buffering=0)  # noqa: SIM115 (the transport closes it)
    try:
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe)
    except BaseException:
        pipe.close()
        os.close(write_fd)
        raise
    writer = asyncio.ensure_future(asyncio.to_thread(write))
    try:
        while piece := await reader.read(_CHUNK):
            yield piece
        await writer  # the end of the pipe is not the end of the bundle if the writer failed
    finally:
        transport.close()
        with contextlib.suppress(Exception):
            await writer


async def unpack_stream(
    pieces: AsyncIterator[bytes], dest: Path, codec: Codec, max_bytes: int | None = None,
) -> Manifest:
    """`read_bundle` of a bundle that arrives as `pieces` (an upload), through a pipe to a
    worker thread: memory stays bounded whatever the size. Pieces that end early make a
    truncated bundle (BadBundle); an error from `pieces` itself is raised as it is, once the
    worker stopped writing into `dest`."""
    read_fd, write_fd = os.pipe()

    def read() -> Manifest:
        with open(read_fd, "rb") as src:
            return read_bundle(src, dest, codec, max_bytes)

    reader = asyncio.ensure_future(asyncio.to_thread(read))
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin,
            open(write_fd, "wb", buffering=0))  # noqa: SIM115 (the transport closes it)
        sink = asyncio.StreamWriter(transport, protocol, None, loop)
        try:
            async for piece in pieces:
                if not await _fed(sink, piece):
                    break  # the reader stopped before the end: its outcome says why
        finally:
            sink.close()  # the end of the bundle, as the reader sees it
    except BaseException:
        with contextlib.suppress(Exception):
            await reader
        raise
    return await reader


async def _fed(sink: asyncio.StreamWriter, piece: bytes) -> bool:
    """Whether `piece` went into the pipe (False: its reader is gone)."""
    try:
        sink.write(piece)
        await sink.drain()
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True
