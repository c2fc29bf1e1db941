"""The kernel catalog and the pure parts of fetching a kernel from Debian, sans I/O: Release
and Packages indexes and which package to take.

Catalog kernels are Debian's cloud kernels. Everything a microVM needs to reach its root
disk and network (virtio, virtio-mmio, virtio-blk, virtio-net) is a module there, so a
catalog kernel comes with banger's own initrd (initrd.py), busybox from Debian's
busybox-static: it does not depend on what the image contains, which is what OCI images (no
kernel, no initramfs-tools) need.
"""

from __future__ import annotations

from dataclasses import dataclass

from banger.core.errors import ChecksumMismatch, ImageBuildFailed


@dataclass(frozen=True)
class CatalogKernel:
    name: str
    suite: str
    package: str  # a metapackage that depends on the current kernel package
    description: str


KERNEL_CATALOG: dict[str, CatalogKernel] = {
    k.name: k
    for k in (
        CatalogKernel("generic-6.1", "bookworm", "linux-image-cloud-amd64",
                      "Debian 12 (bookworm) cloud kernel 6.1"),
        CatalogKernel("generic-6.12", "trixie", "linux-image-cloud-amd64",
                      "Debian 13 (trixie) cloud kernel 6.12"),
    )
}
DEFAULT_KERNEL = "generic-6.1"
BUSYBOX_PACKAGE = "busybox-static"
PACKAGES_INDEX = "main/binary-amd64/Packages.xz"



_SIGNED_BEGIN = "-----BEGIN PGP SIGNED MESSAGE-----"
_SIGNATURE_END = "-----END PGP SIGNATURE-----"


def check_clearsigned(inrelease: str) -> None:
    """Refuse an InRelease that is not exactly one clearsigned message: text before or after
    it, or a second signed block, is not covered by the one signature (as apt refuses)."""
    lines = inrelease.strip().splitlines()
    if (not lines or lines[0] != _SIGNED_BEGIN or lines[-1] != _SIGNATURE_END
            or lines.count(_SIGNED_BEGIN) != 1 or lines.count(_SIGNATURE_END) != 1):
        raise ChecksumMismatch(
            "InRelease is not a single clearsigned message (text outside the signature)",
            hint="the mirror serves a tampered or broken InRelease; check debian_mirror",
        )


def release_sha256(release_text: str) -> dict[str, tuple[str, int]]:
    """path -> (sha256, size) from the SHA256 section of a Release text (the part of
    InRelease its signature covers). A second SHA256 section or a path listed twice is
    refused: either would let later text override what was checked first."""
    found: dict[str, tuple[str, int]] = {}
    in_section = seen_section = False
    for line in release_text.splitlines():
        if not line.startswith(" "):
            in_section = line.strip() == "SHA256:"
            if in_section and seen_section:
                raise ChecksumMismatch("the Release file has two SHA256 sections")
            seen_section = seen_section or in_section
            continue
        if in_section:
            parts = line.split()
            if len(parts) == 3 and parts[1].isdigit():
                if parts[2] in found:
                    raise ChecksumMismatch(f"the Release file lists {parts[2]} twice")
                found[parts[2]] = (parts[0], int(parts[1]))
    return found


def parse_packages(text: str) -> dict[str, dict[str, str]]:
    """Package name -> its stanza's fields (the last stanza wins for repeated names)."""
    packages: dict[str, dict[str, str]] = {}
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t"):
                if key:
                    fields[key] += "\n" + line.strip()
                continue
            key, sep, value = line.partition(":")
            if sep:
                fields[key] = value.strip()
        if "Package" in fields:
            packages[fields["Package"]] = fields
    return packages


@dataclass(frozen=True)
class DebFile:
    package: str
    version: str
    filename: str  # path under the archive root
    sha256: str
    size: int
    installed_bytes: int = 0  # the index's Installed-Size (KiB there); 0 if it has none


def deb_file(packages: dict[str, dict[str, str]], name: str) -> DebFile:
    fields = packages.get(name)
    if fields is None:
        raise ImageBuildFailed(f"package {name} is not in the archive's index")
    try:
        return DebFile(name, fields["Version"], fields["Filename"], fields["SHA256"],
                       int(fields["Size"]), int(fields.get("Installed-Size", "0")) * 1024)
    except (KeyError, ValueError) as exc:
        raise ImageBuildFailed(f"the index entry of {name} is incomplete ({exc})") from None


def kernel_package(packages: dict[str, dict[str, str]], metapackage: str) -> DebFile:
    """The versioned kernel package the metapackage currently depends on."""
    fields = packages.get(metapackage)
    if fields is None:
        raise ImageBuildFailed(f"package {metapackage} is not in the archive's index")
    for alternative in fields.get("Depends", "").split(","):
        name = alternative.split("|")[0].split("(")[0].strip()
        if name.startswith("linux-image-") and name != metapackage:
            return deb_file(packages, name)
    raise ImageBuildFailed(f"{metapackage} does not depend on a linux-image package")


def unpack_bytes(kernel: DebFile, busybox: DebFile) -> int:
    """The most a pull takes in the kernel store while it unpacks: both packages' trees in
    its work directory plus the kernel's files again as the copy that stays."""
    return 2 * kernel.installed_bytes + busybox.installed_bytes


def kernel_version(package: str) -> str:
    """``linux-image-6.1.0-41-cloud-amd64`` -> ``6.1.0-41-cloud-amd64`` (unsigned packages
    carry the same files)."""
    return package.removeprefix("linux-image-").removesuffix("-unsigned")
