"""`kernel pull NAME`: a Debian cloud kernel from the Debian archive the host's apt uses.

The chain of trust is apt's: InRelease is checked with gpgv against Debian's archive keyring
(when both are installed), the Packages index against InRelease's SHA256, each .deb against
the index. The .debs are cached (``<cache>/debs``), so pulling again or on another
installation that shares the cache downloads nothing.

From the kernel package come vmlinuz, the modules tree and (through host/vmlinux.py) the
uncompressed ELF vmlinux Firecracker boots; banger's initrd (host/initrd.py) from
busybox-static and the kernel's modules (core/kernelcatalog.py says why).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import lzma
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp

from banger.core.errors import ChecksumMismatch, ImageBuildFailed
from banger.core.kernelcatalog import (
    BUSYBOX_PACKAGE,
    PACKAGES_INDEX,
    CatalogKernel,
    DebFile,
    deb_file,
    kernel_package,
    kernel_version,
    parse_packages,
    release_sha256,
)
from banger.core.models import ProgressEvent
from banger.host.flatten import Flattener
from banger.host.initrd import build_initrd

STAGE = "kernel"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
_MAX_DEB_TREE = 4 * 1024**3

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
    def __init__(self, cache_dir: Path) -> None:
        self._debs = cache_dir / "debs"

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

    async def _index(
        self, session: aiohttp.ClientSession, archive: str, suite: str, work: Path,
        progress: ProgressSink,
    ) -> dict[str, dict[str, str]]:
        base = f"{archive}/dists/{suite}"
        progress(ProgressEvent(STAGE, f"reading the Debian {suite} index", 0.05))
        inrelease = work / "InRelease"
        inrelease.write_bytes(await _get(session, f"{base}/InRelease"))
        if shutil.which("gpgv") and KEYRING.exists():
            check = subprocess.run(["gpgv", "--keyring", str(KEYRING), str(inrelease)],
                                   capture_output=True, check=False)
            if check.returncode != 0:
                raise ChecksumMismatch(
                    f"the signature of {base}/InRelease does not verify",
                    hint="check the mirror (debian_mirror in config)",
                )
        else:
            progress(ProgressEvent("warning", "warning: gpgv or debian-archive-keyring "
                                   "missing; the archive's signature is not checked"))
        expected = release_sha256(inrelease.read_text(errors="replace")).get(PACKAGES_INDEX)
        if expected is None:
            raise ImageBuildFailed(f"{base}/InRelease lists no {PACKAGES_INDEX}")
        data = await _get(session, f"{base}/{PACKAGES_INDEX}")
        if hashlib.sha256(data).hexdigest() != expected[0]:
            raise ChecksumMismatch(f"{base}/{PACKAGES_INDEX} does not match InRelease")
        return parse_packages(lzma.decompress(data).decode(errors="replace"))

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


def deb_data(deb: Path) -> bytes:
    """The uncompressed data.tar of a .deb (an ar archive)."""
    with open(deb, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise ImageBuildFailed(f"{deb.name} is not a Debian package")
        while True:
            header = f.read(60)
            if len(header) < 60:
                break
            name = header[:16].decode().strip().rstrip("/")
            size = int(header[48:58].decode().strip())
            if name.startswith("data.tar"):
                data = f.read(size)
                if name.endswith(".xz"):
                    return lzma.decompress(data)
                if name.endswith(".gz"):
                    return gzip.decompress(data)
                if name.endswith(".zst"):
                    return subprocess.run(["zstd", "-dcq"], input=data, capture_output=True,
                                          check=True).stdout
                return data
            f.seek(size + (size & 1), os.SEEK_CUR)
    raise ImageBuildFailed(f"{deb.name} has no data.tar member")


def _unpack(deb: Path, into: Path) -> None:
    """Through the safe flattener: a package is signed, but still a tar from the network."""
    into.mkdir(mode=0o755)
    with Flattener(into, max_bytes=_MAX_DEB_TREE) as flat:
        flat.apply_layer(io.BytesIO(deb_data(deb)))
        flat.finish()


def _assemble(
    kernel: DebFile, kernel_deb: Path, busybox_deb: Path, work: Path, dest_dir: Path
) -> FetchedKernel:
    from banger.host.vmlinux import ensure_vmlinux

    version = kernel_version(kernel.package)
    pkg, bb = work / "kernel", work / "busybox"
    _unpack(kernel_deb, pkg)
    _unpack(busybox_deb, bb)
    vmlinuz = pkg / "boot" / f"vmlinuz-{version}"
    modules = next((p for p in (pkg / "lib/modules" / version, pkg / "usr/lib/modules" / version)
                    if p.is_dir()), None)
    if not vmlinuz.is_file() or modules is None:
        raise ImageBuildFailed(f"{kernel.package} has no vmlinuz-{version} or modules")
    busybox = next((p for p in (bb / "bin/busybox", bb / "usr/bin/busybox") if p.is_file()),
                   None)
    if busybox is None:
        raise ImageBuildFailed("busybox-static has no bin/busybox")
    final = work / "out"
    final.mkdir()
    shutil.copyfile(vmlinuz, final / "vmlinuz")
    (final / "initrd.img").write_bytes(build_initrd(modules, busybox.read_bytes()))
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


class FakeKernelFetcher:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def fetch(
        self, *, entry: CatalogKernel, archive: str, dest_dir: Path, progress: ProgressSink
    ) -> FetchedKernel:
        self.calls.append(entry.name)
        progress(ProgressEvent(STAGE, f"fetching {entry.name} (fake)", 0.0))
        (dest_dir / "modules/0.0-fake").mkdir(parents=True)
        for name in ("vmlinuz", "initrd.img"):
            (dest_dir / name).write_bytes(b"fake " + name.encode())
        return FetchedKernel(
            vmlinuz=dest_dir / "vmlinuz", initrd=dest_dir / "initrd.img", vmlinux=None,
            modules=dest_dir / "modules/0.0-fake", version="0.0-fake",
            package=f"{entry.package}=0",
        )
