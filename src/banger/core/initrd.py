"""banger's own initrd, sans I/O: which kernel modules it carries and in what order, its
/init, and what goes into the archive.

A microVM needs very little before its root disk can be mounted: the virtio-mmio transport
and the virtio block driver (modules in Debian's cloud kernels; ext4 is built in). Under TCG
initramfs-tools spends several seconds on the way there (a udevd of its own, `udevadm
trigger`/`settle`, dozens of shell scripts), so banger builds a small initrd instead: a static
busybox, those modules, and an /init that loads them, mounts `root=` and switches to the
image's init. It also mounts the root overlay itself when the kernel command line asks for
one (`banger.overlay=`, see guest.py), and the VM's work disk at /root (so that systemd does
not wait for udev before it). Catalog kernels (kernelcatalog.py) get one, and so does every image
banger builds from Debian packages; images that cannot (no busybox, or a kernel without the
root disk's drivers) keep their own initrd.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping, Sequence

from banger.core.guest import (
    BANGER_INITRD_MARKER,
    OVERLAY_KERNEL_ARG,
    OVERLAY_LOWER_MOUNT,
    OVERLAY_UPPER_MOUNT,
    WORK_DISK_LABEL,
)

# Bump when the /init or the module lists change, so images and cached kernels are rebuilt.
INITRD_VERSION = "1"

# Without these (as modules or built in) the kernel cannot mount the root disk.
ROOT_MODULES: tuple[str, ...] = ("virtio_mmio", "virtio_blk", "ext4")
# Loaded as well, before the root is mounted (udev would load them right after anyway): the
# NIC banger-boot configures, the entropy source and banger-agent's virtio-serial port. No
# virtio_pci: neither QEMU's microvm (as banger runs it) nor Firecracker has a PCI bus.
EXTRA_MODULES: tuple[str, ...] = ("virtio_net", "virtio_rng", "virtio_console")
# Carried, but loaded only for a root overlay.
OVERLAY_MODULES: tuple[str, ...] = ("overlay",)

MODULES_DIR = "lib/modules"
ORDER_FILE = "modules.order"
OVERLAY_ORDER_FILE = "modules.overlay"


def modinfo_depends(module: bytes) -> list[str]:
    """The ``depends=`` of a (decompressed) kernel module's .modinfo section: module names.
    (Debian's kernel packages do not ship modules.dep; depmod makes it at install time.)"""
    start = module.find(b"\0depends=")
    if start < 0:
        return []
    end = module.find(b"\0", start + 1)
    value = module[start + len(b"\0depends="):end].decode(errors="replace")
    return [name.replace("-", "_") for name in value.split(",") if name]


def module_name(path: str) -> str:
    """``kernel/drivers/char/hw_random/virtio-rng.ko.xz`` -> ``virtio_rng``."""
    base = path.strip().rsplit("/", 1)[-1]
    for suffix in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def builtin_modules(modules_builtin: str) -> frozenset[str]:
    """Module names in a kernel's modules.builtin (one ``kernel/.../name.ko`` a line)."""
    return frozenset(module_name(line) for line in modules_builtin.splitlines() if line.strip())


def missing_modules(
    available: Iterable[str], builtin: Iterable[str], wanted: Sequence[str]
) -> list[str]:
    """The `wanted` module names that are neither loadable nor built into the kernel."""
    present = set(available) | set(builtin)
    return [name for name in wanted if name not in present]


_PT_INTERP = 3


def is_static_executable(data: bytes) -> bool:
    """Whether `data` is a 64-bit little-endian ELF without a program interpreter: one that
    runs in an initrd without a libc next to it."""
    if len(data) < 64 or not data.startswith(b"\x7fELF") or data[4:6] != b"\x02\x01":
        return False
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    if phentsize < 4 or phoff + phentsize * phnum > len(data):
        return False
    return all(
        struct.unpack_from("<I", data, phoff + i * phentsize)[0] != _PT_INTERP
        for i in range(phnum)
    )


def load_order(
    paths: Mapping[str, str], depends: Callable[[str], list[str]], wanted: Sequence[str]
) -> list[str]:
    """Paths of the `wanted` modules present in `paths` (name -> path) and of what they
    depend on, each after its dependencies. Names not in `paths` (built in) are skipped."""
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
# Every command is a fork under TCG: builtins where they do.
/bin/busybox --install -s /bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
load() {
    while read -r module; do
        insmod "/__MODULES__/$module" 2>/dev/null
    done < "$1"
}
load /__ORDER__
root=/dev/vda
init=/sbin/init
mode=rw
rootfstype=ext4
overlay=
read -r cmdline < /proc/cmdline
for word in $cmdline; do
    case "$word" in
        root=*) root="${word#root=}" ;;
        init=*) init="${word#init=}" ;;
        rootfstype=*) rootfstype="${word#rootfstype=}" ;;
        ro) mode=ro ;;
        rw) mode=rw ;;
        __OVERLAY_ARG__=*) overlay="${word#*=}" ;;
    esac
done
# Sets dev to the block device for $1 (a path, LABEL= or UUID=), waiting up to 30 s.
find_dev() {
    i=0
    while [ "$i" -lt 300 ]; do
        case "$1" in
            LABEL=*|UUID=*) dev=$(findfs "$1" 2>/dev/null) ;;
            *) dev="$1" ;;
        esac
        [ -n "$dev" ] && [ -b "$dev" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
# The root overlay: the image's read-only root below, this VM's disk above.
mount_overlay() {
    find_dev "$overlay" || { echo "banger-initrd: no overlay disk $overlay"; return 1; }
    load /__OVERLAY_ORDER__
    mkdir -p /banger/ro /banger/rw
    mount -t ext4 "$dev" /banger/rw || return 1
    mkdir -p /banger/rw/upper /banger/rw/work
    mount --move /newroot /banger/ro || { umount /banger/rw; return 1; }
    if ! mount -t overlay -o lowerdir=/banger/ro,upperdir=/banger/rw/upper,workdir=/banger/rw/work \
            overlay /newroot; then
        mount --move /banger/ro /newroot
        umount /banger/rw
        return 1
    fi
    mkdir -p /newroot__LOWER__ /newroot__UPPER__
    mount --move /banger/ro /newroot__LOWER__
    mount --move /banger/rw /newroot__UPPER__
}
find_dev "$root"
if ! mount -t "$rootfstype" -o "$mode" "$dev" /newroot; then
    echo "banger-initrd: cannot mount root $root; dropping to a shell"
    exec sh
fi
if [ -n "$overlay" ] && ! mount_overlay; then
    echo "banger-initrd: cannot mount the root overlay; / stays read-only"
fi
# The work disk (/root in fstab) mounted now: else systemd waits for udev's coldplug to
# announce the device, and banger-boot, sshd and most of the boot wait for /root. Systemd
# adopts the mount. A warm template's blank placeholder disk has no label and stays as is.
work=$(findfs LABEL=__WORK_LABEL__ 2>/dev/null) && mount -t ext4 "$work" /newroot/root
if [ ! -x "/newroot$init" ] && [ ! -L "/newroot$init" ]; then
    echo "banger-initrd: the image has no $init (it needs systemd, or init= on the cmdline)"
fi
mount --move /dev /newroot/dev 2>/dev/null || umount /dev
umount /proc
exec switch_root /newroot "$init"
"""
INIT_SCRIPT = (
    INIT_SCRIPT.replace("__MODULES__", MODULES_DIR)
    .replace("__ORDER__", ORDER_FILE)
    .replace("__OVERLAY_ORDER__", OVERLAY_ORDER_FILE)
    .replace("__OVERLAY_ARG__", OVERLAY_KERNEL_ARG)
    .replace("__LOWER__", OVERLAY_LOWER_MOUNT)
    .replace("__UPPER__", OVERLAY_UPPER_MOUNT)
    .replace("__WORK_LABEL__", WORK_DISK_LABEL)
)

_DIR = 0o040755
_EXEC = 0o100755
_FILE = 0o100644
_SYMLINK = 0o120777


def initrd_files(
    busybox: bytes,
    modules: Sequence[tuple[str, bytes]],
    overlay_modules: Sequence[tuple[str, bytes]] = (),
) -> dict[str, tuple[int, bytes]]:
    """The archive's entries (path -> (mode, content), parents first) for cpio.py's
    newc writer. `modules` and `overlay_modules` are (path or name, decompressed .ko) in
    load order; each is stored under a numbered name so that order survives."""
    files: dict[str, tuple[int, bytes]] = {
        name: (_DIR, b"") for name in ("bin", "dev", "proc", "sys", "newroot", "lib", MODULES_DIR)
    }
    files["bin/busybox"] = (_EXEC, busybox)
    # /bin/sh before /init has run `busybox --install`: the root overlay's rdinit needs it.
    files["bin/sh"] = (_SYMLINK, b"busybox")
    files["init"] = (_EXEC, INIT_SCRIPT.encode())
    files[BANGER_INITRD_MARKER.lstrip("/")] = (_FILE, f"{INITRD_VERSION}\n".encode())
    index = 0
    for list_name, group in ((ORDER_FILE, modules), (OVERLAY_ORDER_FILE, overlay_modules)):
        names = []
        for path, data in group:
            name = f"{index:02d}-{module_name(path)}.ko"
            files[f"{MODULES_DIR}/{name}"] = (_FILE, data)
            names.append(name)
            index += 1
        files[list_name] = (_FILE, "".join(f"{name}\n" for name in names).encode())
    return files
