"""vmlinux from a real Debian kernel (the cloud kernel's payload is LZ4)."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
from pathlib import Path

import pytest

from banger.core.errors import InvalidInput
from banger.core.kernelformat import check_vmlinux
from banger.host.vmlinux import ensure_vmlinux, extract_vmlinux
from tests.core.test_kernelformat import ELF, bzimage

DEBIAN_KERNEL = Path(os.environ.get("BANGER_TEST_IMAGE_CACHE", "/var/tmp/bt-cache"),
                     "dev", "vmlinuz")


@pytest.mark.skipif(not DEBIAN_KERNEL.exists(), reason=f"no Debian kernel at {DEBIAN_KERNEL}")
@pytest.mark.skipif(shutil.which("lz4") is None, reason="needs the lz4 tool")
def test_extracts_the_debian_cloud_kernel(tmp_path: Path) -> None:
    before = hashlib.sha256(DEBIAN_KERNEL.read_bytes()).hexdigest()
    vmlinux = ensure_vmlinux(DEBIAN_KERNEL, tmp_path)
    data = vmlinux.read_bytes()
    check_vmlinux(data)
    # The kernel's size field after the payload is the exact uncompressed size.
    source = DEBIAN_KERNEL.read_bytes()
    setup = (source[0x1F1] + 1) * 512
    offset, length = struct.unpack_from("<II", source, 0x248)
    assert len(data) == struct.unpack_from("<I", source, setup + offset + length - 4)[0]
    assert ensure_vmlinux(DEBIAN_KERNEL, tmp_path) == vmlinux  # cached
    assert hashlib.sha256(DEBIAN_KERNEL.read_bytes()).hexdigest() == before


def test_gzip_payloads_unpack_with_the_standard_library(tmp_path: Path) -> None:
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(bzimage(gzip.compress(ELF) + struct.pack("<I", len(ELF))))
    assert extract_vmlinux(kernel.read_bytes()) == ELF
    cached = ensure_vmlinux(kernel, tmp_path / "cache")
    assert cached.parent == tmp_path / "cache" and cached.read_bytes() == ELF


def test_a_vmlinux_is_used_as_it_is(tmp_path: Path) -> None:
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(ELF)
    assert ensure_vmlinux(kernel, tmp_path / "cache") == kernel


def test_a_payload_that_is_no_elf_is_refused(tmp_path: Path) -> None:
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(bzimage(gzip.compress(b"not a kernel") + struct.pack("<I", 12)))
    with pytest.raises(InvalidInput, match="did not unpack to a vmlinux"):
        ensure_vmlinux(kernel, tmp_path / "cache")
