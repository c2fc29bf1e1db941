"""`kernel pull NAME`: a Debian cloud kernel from the Debian archive the host's apt uses.

The chain of trust is apt's: InRelease is checked with gpgv against Debian's archive keyring
(a pull without both fails), and only the text the signature covers (gpgv --output) is
read; the Packages index is checked against its SHA256, each .deb against the index. What
the archive sends is decompressed with a cap, so a bomb stops with an error. The .debs are
cached (``<cache>/debs``), so pulling again or on another installation that shares the
cache downloads nothing.

From the kernel package come vmlinuz, the modules tree and (through host/vmlinux.py) the
uncompressed ELF vmlinux Firecracker boots; banger's initrd (host/initrd.py) from
busybox-static and the kernel's modules (core/kernelcatalog.py says why).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import io
import lzma
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import aiohttp

from banger.core.errors import ChecksumMismatch, ImageBuildFailed, ImageTooLarge, MissingTool
from banger.core.kernelcatalog import (
    BUSYBOX_PACKAGE,
    PACKAGES_INDEX,
    CatalogKernel,
    DebFile,
    check_clearsigned,
    deb_file,
    kernel_package,
    kernel_version,
    parse_packages,
    release_sha256,
    unpack_bytes,
)
from banger.core.models import ProgressEvent
from banger.core.sizing import require_room
from banger.core.units import format_size
from banger.host import hostinfo
from banger.host.flatten import Flattener
from banger.host.initrd import build_initrd, find_in_tree
from banger.host.safeio import decompress, read_regular

STAGE = "kernel"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
_MAX_DEB_TREE = 4 * 1024**3
_MAX_BUSYBOX = 64 * 1024**2
_MAX_INDEX = 512 * 1024**2  # bookworm's main Packages: ~45 MiB

ProgressSink = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class FetchedKernel:
    vmlinuz: Path
    initrd: Path
    vmlinux: Path | None
    modules: Path
    version: str
    package: str  # name=version


class KernelFetcher(Protocol):
    async def fetch(
        self, *, entry: CatalogKernel, archive: str, dest_dir: Path, progress: ProgressSink
    ) -> FetchedKernel: ...


class DebianKernelFetcher:
    def __init__(
        self, cache_dir: Path, free_bytes: Callable[[Path], int] = hostinfo.free_bytes
    ) -> None:
        self._debs = cache_dir / "debs"
        self._free_bytes = free_bytes

    async def fetch(
        self, *, entry: CatalogKernel, archive: str, dest_dir: Path, progress: ProgressSink
    ) -> FetchedKernel:
        dest_dir = dest_dir.absolute()
        dest_dir.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.pull-", dir=dest_dir.parent))
        try:
            async with aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
            ) as session:
                packages = await self._index(session, archive, entry.suite, work, progress)
                kernel = kernel_package(packages, entry.package)
                busybox = deb_file(packages, BUSYBOX_PACKAGE)
                self._require_room(kernel, busybox, dest_dir.parent)
                debs = [await self._deb(session, archive, deb, progress)
                        for deb in (kernel, busybox)]
            progress(ProgressEvent(STAGE, f"unpacking {kernel.package} {kernel.version}", 0.7))
            fetched = await asyncio.to_thread(
                _assemble, kernel, debs[0], debs[1], work, dest_dir
            )
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)
        progress(ProgressEvent(STAGE, f"kernel {entry.name} ready ({fetched.version})", 1.0))
        return fetched

    def _require_room(self, kernel: DebFile, busybox: DebFile, store: Path) -> None:
        """Before any download, from the sizes the signed index declares: the .debs not
        cached yet into the deb cache, their unpacked files into the kernel store (one sum
        when both are on one filesystem). A full disk fails here, with nothing made."""
        download = sum(deb.size for deb in (kernel, busybox)
                       if not (self._debs / Path(deb.filename).name).exists())
        unpack = unpack_bytes(kernel, busybox)
        if _same_filesystem(self._debs, store):
            require_room(self._free_bytes(store), download + unpack,
                         where=str(store), what="pulling this kernel")
            return
        require_room(self._free_bytes(self._debs), download,
                     where=str(self._debs), what="downloading this kernel")
        require_room(self._free_bytes(store), unpack,
                     where=str(store), what="unpacking this kernel")

    async def _index(
        self, session: aiohttp.ClientSession, archive: str, suite: str, work: Path,
        progress: ProgressSink,
    ) -> dict[str, dict[str, str]]:
        base = f"{archive}/dists/{suite}"
        progress(ProgressEvent(STAGE, f"reading the Debian {suite} index", 0.05))
        inrelease = work / "InRelease"
        inrelease.write_bytes(await _get(session, f"{base}/InRelease"))
        release = verified_release(inrelease, KEYRING)
        expected = release_sha256(release).get(PACKAGES_INDEX)
        if expected is None:
            raise ImageBuildFailed(f"{base}/InRelease lists no {PACKAGES_INDEX}")
        data = await _get(session, f"{base}/{PACKAGES_INDEX}")
        if hashlib.sha256(data).hexdigest() != expected[0]:
            raise ChecksumMismatch(f"{base}/{PACKAGES_INDEX} does not match InRelease")
        index = decompress("xz", data, _MAX_INDEX, lambda: ImageTooLarge(
            f"{base}/{PACKAGES_INDEX} unpacks to more than {format_size(_MAX_INDEX)}"))
        return parse_packages(index.decode(errors="replace"))

    async def _deb(
        self, session: aiohttp.ClientSession, archive: str, deb: DebFile, progress: ProgressSink
    ) -> Path:
        self._debs.mkdir(parents=True, exist_ok=True)
        path = self._debs / Path(deb.filename).name
        if path.exists() and _sha256(path) == deb.sha256:
            progress(ProgressEvent(STAGE, f"{path.name} (cached)", 0.6))
            return path
        progress(ProgressEvent(STAGE, f"downloading {path.name} ({deb.size >> 20} MiB)", 0.1))
        partial = path.with_name(path.name + ".partial")
        hasher = hashlib.sha256()
        try:
            async with session.get(f"{archive}/{deb.filename}") as response:
                if response.status != 200:
                    raise ImageBuildFailed(
                        f"{archive}/{deb.filename}: HTTP {response.status}",
                        hint="the mirror may be updating; try again later",
                    )
                with open(partial, "wb") as out:
                    async for chunk in response.content.iter_chunked(1 << 20):
                        hasher.update(chunk)
                        out.write(chunk)
        except aiohttp.ClientError as exc:
            raise ImageBuildFailed(f"cannot download {deb.filename}: {exc}") from None
        if hasher.hexdigest() != deb.sha256:
            partial.unlink(missing_ok=True)
            raise ChecksumMismatch(f"{path.name} does not match the archive's index")
        os.replace(partial, path)
        return path


def _same_filesystem(a: Path, b: Path) -> bool:
    def device(path: Path) -> int:
        while not path.exists():
            path = path.parent
        return path.stat().st_dev

    return device(a) == device(b)


def verified_release(inrelease: Path, keyring: Path) -> str:
    """The Release text InRelease's signature covers, as gpgv writes it out: never the
    unsigned text around it. Fails closed: without gpgv or the keyring nothing is trusted."""
    gpgv = shutil.which("gpgv")
    if gpgv is None or not keyring.is_file():
        raise MissingTool(
            "gpgv or the Debian archive keyring is missing: the kernel's signature cannot "
            "be checked", hint="apt-get install gpgv debian-archive-keyring",
        )
    check_clearsigned(inrelease.read_text(errors="replace"))
    signed = inrelease.with_name(inrelease.name + ".signed")
    signed.unlink(missing_ok=True)
    check = subprocess.run(
        [gpgv, "--keyring", str(keyring), "--output", str(signed), str(inrelease)],
        capture_output=True, check=False,
    )
    if check.returncode != 0:
        raise ChecksumMismatch(
            "the signature of InRelease does not verify",
            hint="check the mirror (debian_mirror in config)",
        )
    return signed.read_text(errors="replace")


async def _get(session: aiohttp.ClientSession, url: str) -> bytes:
    try:
        async with session.get(url) as response:
            if response.status != 200:
                raise ImageBuildFailed(f"{url}: HTTP {response.status}",
                                       hint="check debian_mirror / the host's apt sources")
            return await response.read()
    except aiohttp.ClientError as exc:
        raise ImageBuildFailed(f"cannot reach {url}: {exc}",
                               hint="check debian_mirror / the host's apt sources") from None


def _sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


@contextlib.contextmanager
def deb_data(deb: Path) -> Iterator[IO[bytes]]:
    """The uncompressed data.tar of a .deb (an ar archive), as a stream: its size is
    capped by whoever reads it (the flattener), not by memory."""
    with open(deb, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise ImageBuildFailed(f"{deb.name} is not a Debian package")
        while True:
            header = f.read(60)
            if len(header) < 60:
                break
            name = header[:16].decode(errors="replace").strip().rstrip("/")
            try:
                size = int(header[48:58].decode(errors="replace").strip())
            except ValueError:
                raise ImageBuildFailed(f"{deb.name} is not a valid Debian package") from None
            if name.startswith("data.tar"):
                member = io.BufferedReader(_Slice(f, size))
                if name.endswith(".zst"):
                    with _zstd_stream(member) as stream:
                        yield stream
                elif name.endswith(".xz"):
                    with lzma.LZMAFile(member) as xz:
                        yield xz
                elif name.endswith(".gz"):
                    with gzip.GzipFile(fileobj=member) as gz:
                        yield gz  # type: ignore[misc]  # typeshed: GzipFile is no IO[bytes]
                else:
                    yield member
                return
            f.seek(size + (size & 1), os.SEEK_CUR)
    raise ImageBuildFailed(f"{deb.name} has no data.tar member")


class _Slice(io.RawIOBase):
    """`size` bytes of `f` from its current offset."""

    def __init__(self, f: IO[bytes], size: int) -> None:
        self._f = f
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._f.read(min(len(buffer), self._left))
        buffer[:len(data)] = data
        self._left -= len(data)
        return len(data)


@contextlib.contextmanager
def _zstd_stream(member: IO[bytes]) -> Iterator[IO[bytes]]:
    proc = subprocess.Popen(["zstd", "-dcq"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None

    def feed() -> None:
        assert proc.stdin is not None
        with contextlib.suppress(OSError):
            while chunk := member.read(1 << 20):
                proc.stdin.write(chunk)
        with contextlib.suppress(OSError):
            proc.stdin.close()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        yield proc.stdout
    finally:
        proc.kill()
        proc.wait()
        feeder.join()
        proc.stdout.close()


def _unpack(deb: Path, into: Path) -> None:
    """Through the safe flattener: a package is signed, but still a tar from the network."""
    into.mkdir(mode=0o755)
    with Flattener(into, max_bytes=_MAX_DEB_TREE) as flat, deb_data(deb) as data:
        flat.apply_layer(data)
        flat.finish()


def _assemble(
    kernel: DebFile, kernel_deb: Path, busybox_deb: Path, work: Path, dest_dir: Path
) -> FetchedKernel:
    from banger.host.vmlinux import ensure_vmlinux

    version = kernel_version(kernel.package)
    pkg, bb = work / "kernel", work / "busybox"
    _unpack(kernel_deb, pkg)
    _unpack(busybox_deb, bb)
    # Symlinks in a package resolve inside its tree or are not used.
    vmlinuz = find_in_tree(pkg, (f"boot/vmlinuz-{version}",), directory=False)
    modules = find_in_tree(pkg, (f"lib/modules/{version}", f"usr/lib/modules/{version}"),
                           directory=True)
    if vmlinuz is None or modules is None:
        raise ImageBuildFailed(f"{kernel.package} has no vmlinuz-{version} or modules")
    busybox = find_in_tree(bb, ("bin/busybox", "usr/bin/busybox"), directory=False)
    if busybox is None:
        raise ImageBuildFailed("busybox-static has no bin/busybox")
    final = work / "out"
    final.mkdir()
    shutil.copyfile(vmlinuz, final / "vmlinuz")
    (final / "initrd.img").write_bytes(build_initrd(modules, read_regular(busybox, _MAX_BUSYBOX)))
    shutil.copytree(modules, final / "modules" / version, symlinks=True)
    vmlinux: Path | None = None
    try:
        made = ensure_vmlinux(final / "vmlinuz", work / "vmlinux-cache")
        shutil.move(made, final / "vmlinux")
        vmlinux = dest_dir / "vmlinux"
    except Exception:  # optional: only Firecracker needs it
        vmlinux = None
    if dest_dir.exists():
        shutil.rmtree(dest_dir)
    final.rename(dest_dir)
    return FetchedKernel(
        vmlinuz=dest_dir / "vmlinuz", initrd=dest_dir / "initrd.img", vmlinux=vmlinux,
        modules=dest_dir / "modules" / version, version=version,
        package=f"{kernel.package}={kernel.version}",
    )
