"""The kernel catalog and the pure parts of fetching a kernel from Debian, sans I/O: Release
and Packages indexes, which package to take, the module closure for a small initrd and that
initrd's /init.

Catalog kernels are Debian's cloud kernels. Everything a microVM needs to reach its root
disk and network (virtio, virtio-mmio, virtio-blk, virtio-net) is a module there, so banger
builds a small initrd of its own: busybox (from Debian's busybox-static), those modules, and
an /init that loads them, mounts `root=` and switches to the image's init. It does not
depend on what the image contains, which is what OCI images (no kernel, no initramfs-tools)
need.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from banger.core.errors import ImageBuildFailed


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

# What the initrd loads, with their dependencies: the disks and the NIC of a microVM, and
# the entropy source. Missing ones (built into another kernel) are skipped.
INITRD_MODULES: tuple[str, ...] = (
    "virtio_mmio", "virtio_pci", "virtio_blk", "virtio_net", "virtio_rng", "virtio_console",
)


def release_sha256(release_text: str) -> dict[str, tuple[str, int]]:
    """path -> (sha256, size) from the SHA256 section of a (In)Release file."""
    found: dict[str, tuple[str, int]] = {}
    in_section = False
    for line in release_text.splitlines():
        if not line.startswith(" "):
            in_section = line.strip() == "SHA256:"
            continue
        if in_section:
            parts = line.split()
            if len(parts) == 3 and parts[1].isdigit():
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


def deb_file(packages: dict[str, dict[str, str]], name: str) -> DebFile:
    fields = packages.get(name)
    if fields is None:
        raise ImageBuildFailed(f"package {name} is not in the archive's index")
    try:
        return DebFile(name, fields["Version"], fields["Filename"], fields["SHA256"],
                       int(fields["Size"]))
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


def kernel_version(package: str) -> str:
    """``linux-image-6.1.0-41-cloud-amd64`` -> ``6.1.0-41-cloud-amd64`` (unsigned packages
    carry the same files)."""
    return package.removeprefix("linux-image-").removesuffix("-unsigned")


def modinfo_depends(module: bytes) -> list[str]:
    """The ``depends=`` of a (decompressed) kernel module's .modinfo section: module names.
    (Debian's packages do not ship modules.dep; depmod makes it at install time.)"""
    start = module.find(b"\0depends=")
    if start < 0:
        return []
    end = module.find(b"\0", start + 1)
    value = module[start + len(b"\0depends="):end].decode(errors="replace")
    return [name.replace("-", "_") for name in value.split(",") if name]


def module_name(path: str) -> str:
    base = path.strip().rsplit("/", 1)[-1]
    for suffix in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def load_order(
    paths: dict[str, str], depends: Callable[[str], list[str]], wanted: tuple[str, ...]
) -> list[str]:
    """Paths of the `wanted` modules present in `paths` (name -> path) and of what they
    depend on, each after its dependencies."""
    order: list[str] = []

    def visit(name: str, depth: int) -> None:
        path = paths.get(name)
        if path is None or path in order or depth > 64:
            return
        for dep in depends(path):
            visit(dep, depth + 1)
        if path not in order:
            order.append(path)

    for name in wanted:
        visit(name, 0)
    return order


INIT_SCRIPT = r"""#!/bin/busybox sh
# banger's initrd: load the microVM drivers, mount root=, switch to the image's init.
/bin/busybox mkdir -p /proc /sys /dev /newroot
/bin/busybox --install -s /bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
while read -r module; do
    insmod "/lib/modules/$module" 2>/dev/null
done < /modules.order
root=/dev/vda
init=/sbin/init
mode=rw
rootfstype=ext4
for word in $(cat /proc/cmdline); do
    case "$word" in
        root=*) root="${word#root=}" ;;
        init=*) init="${word#init=}" ;;
        rootfstype=*) rootfstype="${word#rootfstype=}" ;;
        ro) mode=ro ;;
        rw) mode=rw ;;
    esac
done
i=0
while [ "$i" -lt 300 ]; do
    case "$root" in
        LABEL=*|UUID=*) dev=$(findfs "$root" 2>/dev/null) ;;
        *) dev="$root" ;;
    esac
    [ -n "$dev" ] && [ -b "$dev" ] && break
    sleep 0.1
    i=$((i + 1))
done
if ! mount -t "$rootfstype" -o "$mode" "$dev" /newroot; then
    echo "banger-initrd: cannot mount root $root; dropping to a shell"
    exec sh
fi
if [ ! -x "/newroot$init" ] && [ ! -L "/newroot$init" ]; then
    echo "banger-initrd: the image has no $init (it needs systemd, or init= on the cmdline)"
fi
mount --move /dev /newroot/dev 2>/dev/null || umount /dev
umount /proc /sys
exec switch_root /newroot "$init"
"""
