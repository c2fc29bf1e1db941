"""Producing the uncompressed ELF `vmlinux` Firecracker boots on x86 from a distribution's
`vmlinuz`, cached by the source's content so each kernel is extracted once.

gzip, xz, lzma and bzip2 payloads are decompressed with the standard library; LZ4 (the
Debian cloud kernel's) and zstd with the `lz4`/`zstd` tools (Debian packages lz4, zstd).
"""

from __future__ import annotations

import bz2
import hashlib
import lzma
import os
import shutil
import subprocess
import tempfile
import zlib
from pathlib import Path

from banger.core.errors import HostError, InvalidInput, MissingTool
from banger.core.kernelformat import check_vmlinux, find_payload, is_vmlinux

_TOOLS = {
    "lz4": (["lz4", "-dc"], "apt-get install lz4"),
    "zstd": (["zstd", "-dcq"], "apt-get install zstd"),
    "lzo": (["lzop", "-dc"], "apt-get install lzop"),
}


def _decompress(compression: str, payload: bytes) -> bytes:
    if compression == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(payload)
    if compression in ("xz", "lzma"):
        fmt = lzma.FORMAT_XZ if compression == "xz" else lzma.FORMAT_ALONE
        return lzma.LZMADecompressor(format=fmt).decompress(payload)
    if compression == "bzip2":
        return bz2.BZ2Decompressor().decompress(payload)
    argv, install = _TOOLS[compression]
    if shutil.which(argv[0]) is None:
        raise MissingTool(f"{argv[0]} not found: needed to unpack a {compression} kernel",
                          hint=install)
    proc = subprocess.run(argv, input=payload, capture_output=True, check=False)
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip()
        raise HostError(f"{argv[0]} could not unpack the kernel: {detail}")
    return proc.stdout


def extract_vmlinux(vmlinuz: bytes) -> bytes:
    """The ELF vmlinux inside a bzImage (or the input itself if it already is one)."""
    if is_vmlinux(vmlinuz):
        return vmlinuz
    payload = find_payload(vmlinuz)
    data = _decompress(
        payload.compression, vmlinuz[payload.offset:payload.offset + payload.length]
    )
    try:
        check_vmlinux(data)
    except InvalidInput as exc:
        raise InvalidInput(
            f"the {payload.compression} payload did not unpack to a vmlinux: {exc.message}"
        ) from None
    return data


def ensure_vmlinux(kernel: Path, cache_dir: Path) -> Path:
    """A cached vmlinux for `kernel` (vmlinuz or vmlinux). The source is only read."""
    try:
        source = kernel.read_bytes()
    except OSError as exc:
        raise HostError(f"cannot read kernel {kernel}: {exc.strerror}") from exc
    if is_vmlinux(source):
        return kernel
    digest = hashlib.sha256(source).hexdigest()[:16]
    target = cache_dir / f"vmlinux-{digest}"
    if target.exists():
        return target
    try:
        data = extract_vmlinux(source)
    except InvalidInput as exc:
        raise InvalidInput(
            f"cannot make a vmlinux from {kernel}: {exc.message}",
            hint="Firecracker needs an uncompressed ELF vmlinux or an x86 bzImage",
        ) from None
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".vmlinux-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    return target
