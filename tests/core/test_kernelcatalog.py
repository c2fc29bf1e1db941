from __future__ import annotations

import pytest

from banger.core.errors import ImageBuildFailed
from banger.core.kernelcatalog import (
    KERNEL_CATALOG,
    deb_file,
    kernel_package,
    kernel_version,
    parse_packages,
    release_sha256,
    unpack_bytes,
)

PACKAGES = """\
Package: linux-image-cloud-amd64
Version: 6.1.176-1
Depends: linux-image-6.1.0-50-cloud-amd64 (= 6.1.176-1)
Filename: pool/main/l/linux-signed-amd64/linux-image-cloud-amd64_6.1.176-1_amd64.deb
SHA256: aa
Size: 1000

Package: linux-image-6.1.0-50-cloud-amd64
Version: 6.1.176-1
Description: Linux 6.1 for x86-64 cloud
 continued description line
Filename: pool/main/l/linux-signed-amd64/linux-image-6.1.0-50-cloud-amd64_6.1.176-1_amd64.deb
SHA256: bb
Size: 25000000
Installed-Size: 120000
"""


def test_catalog_has_both_debian_kernels() -> None:
    assert {"generic-6.1", "generic-6.12"} <= set(KERNEL_CATALOG)
    assert KERNEL_CATALOG["generic-6.12"].suite == "trixie"


def test_packages_and_kernel_choice() -> None:
    packages = parse_packages(PACKAGES)
    assert "continued" in packages["linux-image-6.1.0-50-cloud-amd64"]["Description"]
    deb = kernel_package(packages, "linux-image-cloud-amd64")
    assert deb.package == "linux-image-6.1.0-50-cloud-amd64"
    assert deb.sha256 == "bb" and deb.size == 25000000
    assert deb.installed_bytes == 120000 * 1024
    assert unpack_bytes(deb, deb_file(packages, "linux-image-cloud-amd64")) == 2 * 120000 * 1024
    assert kernel_version(deb.package) == "6.1.0-50-cloud-amd64"
    with pytest.raises(ImageBuildFailed):
        deb_file(packages, "busybox-static")
    with pytest.raises(ImageBuildFailed):
        kernel_package(packages, "linux-image-6.1.0-50-cloud-amd64")


def test_release_sha256_section() -> None:
    text = ("Origin: Debian\nMD5Sum:\n 00 1 main/binary-amd64/Packages.xz\nSHA256:\n"
            " abc 123 main/binary-amd64/Packages.xz\n def 9 contrib/x\nAcquire-By-Hash: yes\n")
    assert release_sha256(text) == {"main/binary-amd64/Packages.xz": ("abc", 123),
                                    "contrib/x": ("def", 9)}
