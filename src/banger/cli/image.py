"""`banger image ...`."""

from __future__ import annotations

from banger.cli.context import Context
from banger.cli.render import ProgressPrinter, iso_time, print_fields, print_json, print_table
from banger.cli.spec import FILE, HOST_PATH, IMAGES, KERNELS, Arg, Group, Opt, echo, path
from banger.core.units import format_size

TYPE_CHECKING = False  # not typing's: see banger.core.xdg
if TYPE_CHECKING:
    from typing import Any

image = Group("image", "Manage images (root filesystem + kernel + initrd).")
NAME = Arg("name", complete=IMAGES)
JSON = Opt("--json", dest="as_json", flag=True, help="Machine-readable output.")
EXISTING_FILE = path(exists=True, dir_okay=False, resolve=True)


@image.command(JSON, name="list")
def list_(ctx: Context, as_json: bool) -> None:
    """List local images."""
    images = ctx.client.list_images()
    if as_json:
        print_json(images)
        return
    print_table(
        ["NAME", "MANAGED", "SIZE", "SOURCE", "CREATED"],
        [
            [i.name, "yes" if i.managed else "no", format_size(i.size_bytes), i.source,
             iso_time(i.created_at)]
            for i in images
        ],
    )


@image.command(NAME, JSON)
def show(ctx: Context, name: str, as_json: bool) -> None:
    """Show one image (and its warm template, if it has one)."""
    from banger.core.models import to_dict

    i = ctx.client.get_image(name)
    template, templates = ctx.client.image_templates(name)
    if as_json:
        print_json({**to_dict(i), "template": template, "templates": templates})
        return
    print_fields([
        ("name", i.name), ("managed", "yes" if i.managed else "no"), ("source", i.source),
        ("rootfs", i.rootfs), ("kernel", i.kernel or f"(kernel store: {i.kernel_name})"),
        ("initrd", i.initrd or "-"),
        ("size", format_size(i.size_bytes)),
        ("created", iso_time(i.created_at)),
        ("template", _describe_templates(template, templates)),
    ])


def _describe_templates(
    default: dict[str, Any] | None, templates: dict[str, dict[str, Any]]
) -> str:
    """One line: the default backend's template, and any other backend's by name."""
    others = sorted(
        ((b, t) for b, t in templates.items() if not default or b != default["backend"]),
        key=lambda item: item[0],
    )
    if not others:
        return _describe_template(default)
    described = [(default["backend"], default)] if default else []
    return "; ".join(f"{b}: {_describe_template(t)}" for b, t in described + others)


def _describe_template(template: dict[str, Any] | None) -> str:
    if not template:
        return "none (made after the first cold boot, or by `banger image warm`)"
    if "disk_bytes" not in template:
        return "being made"
    return (f"{template['vcpu']} vCPU / {template['memory_mib']} MiB, "
            f"{format_size(template['disk_bytes'])} on disk, made "
            f"{iso_time(template['created_at'])}")


@image.command(
    NAME,
    Opt("--force", flag=True, help="Make it again even if it is current."),
    Opt("--delete", dest="drop", flag=True,
        help="Delete the image's warm templates (of every backend)."),
    Opt("--backend", choices=["qemu", "firecracker"],
        help="Make the template for this backend's VMs (default: the daemon's backend)."),
)
def warm(ctx: Context, name: str, force: bool, drop: bool, backend: str | None) -> None:
    """Make the image's warm template: VMs of the image then start from it instead of
    booting (see `vm run --cold`)."""
    if drop:
        deleted = ctx.client.delete_image_template(name)
        echo(f"deleted the warm template of {name}" if deleted
             else f"{name} has no warm template")
        return
    printer = ProgressPrinter()
    try:
        result = ctx.client.warm_image(name, force=force, backend=backend, on_progress=printer)
    finally:
        printer.done()
    echo(f"{name}: warm template: {_describe_template(result.get('template'))}")


@image.command(
    Arg("name"),
    Opt("--force", flag=True, help="Rebuild or pull again even if already local."),
    Opt("--name", dest="as_name", help="Image name for an OCI pull (default: from the "
        "reference, e.g. debian-bookworm-oci)."),
    Opt("--kernel", complete=KERNELS, help="Default kernel of a pulled image (default: the "
        "image's own kernel if it has one, else default_kernel)."),
)
def pull(ctx: Context, name: str, force: bool, as_name: str | None, kernel: str | None) -> None:
    """Build a catalog image (debian-bookworm, debian-trixie) or pull NAME from an OCI
    registry (docker.io/library/debian:bookworm, ghcr.io/o/r@sha256:..., 127.0.0.1:5000/x)."""
    printer = ProgressPrinter()
    try:
        pulled = ctx.client.pull_image(
            name, force=force, on_progress=printer, as_name=as_name, kernel=kernel
        )
    finally:
        printer.done()
    echo(f"{pulled.name} {format_size(pulled.size_bytes)}")


@image.command(
    Opt("--name", required=True, help="Image name."),
    Opt("--rootfs", required=True, type=HOST_PATH, complete=FILE,
        help="Raw ext4 root filesystem (stays where it is)."),
    Opt("--kernel", required=True, type=HOST_PATH, complete=FILE,
        help="Kernel (bzImage/vmlinuz)."),
    Opt("--initrd", type=HOST_PATH, complete=FILE, help="Initial ramdisk."),
)
def register(
    ctx: Context, name: str, rootfs: str, kernel: str, initrd: str | None
) -> None:
    """Register an image from files on this host (they are not copied)."""
    ctx.require_local_daemon("image register")
    registered = ctx.client.register_image(name, rootfs, kernel, initrd)
    echo(f"registered {registered.name}")


@image.command(NAME, Opt("--force", flag=True, help="Also delete the VMs created from the "
                         "image (refused while any of them is running)."))
def delete(ctx: Context, name: str, force: bool) -> None:
    """Delete an image (and banger's own copy of its files; registered files stay).

    Refused while a VM created from it exists (their disks are built on the image's
    files); --force deletes those VMs too, as long as none of them is running."""
    deleted = ctx.client.delete_image(name, force=force)
    echo(f"deleted {deleted.name}")


@image.command(
    NAME,
    Opt("-o", "--output", required=True, type=path(dir_okay=False), complete=FILE,
        metavar="FILE",
        help="Bundle file to write, e.g. NAME.tar.zst."),
    name="export",
)
def export(ctx: Context, name: str, output: str) -> None:
    """Write an image (rootfs, kernel, initrd, metadata) to one zstd-compressed bundle with
    sha256 checksums, for `banger image import` on another machine. FILE is on this machine,
    also when the daemon is a remote one (the bundle streams through the connection)."""
    import os

    printer = ProgressPrinter()
    try:
        result = ctx.client.export_image(name, os.path.abspath(output), on_progress=printer)
    finally:
        printer.done()
    echo(f"{result['path']} {format_size(int(result['bytes']))}")


@image.command(
    Arg("bundle", type=EXISTING_FILE, complete=FILE),
    Opt("--name", dest="as_name", metavar="NAME", help="Import under this name (default: "
        "the exported image's name; needed when that name is taken)."),
    name="import",
)
def import_(ctx: Context, bundle: str, as_name: str | None) -> None:
    """Import an image bundle made by `banger image export` (a file on this machine, uploaded
    to a remote daemon); every file's checksum is verified, and a bad bundle leaves nothing
    behind."""
    printer = ProgressPrinter()
    try:
        imported = ctx.client.import_image(bundle, as_name=as_name, on_progress=printer)
    finally:
        printer.done()
    echo(f"{imported.name} {format_size(imported.size_bytes)}")


@image.command(NAME)
def promote(ctx: Context, name: str) -> None:
    """Copy a registered image's files into banger's storage (the originals stay)."""
    promoted = ctx.client.promote_image(name)
    echo(f"promoted {promoted.name}: {promoted.rootfs}")
