"""`banger image ...`."""

from __future__ import annotations

from datetime import datetime

import click

from banger.cli.completion import image_names, kernel_names
from banger.cli.context import Context, pass_ctx
from banger.cli.render import ProgressPrinter, print_fields, print_json, print_table
from banger.core.units import format_size


@click.group()
def image() -> None:
    """Manage images (root filesystem + kernel + initrd)."""


@image.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
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
             datetime.fromtimestamp(i.created_at).isoformat(timespec="seconds")]
            for i in images
        ],
    )


@image.command()
@click.argument("name", shell_complete=image_names)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def show(ctx: Context, name: str, as_json: bool) -> None:
    """Show one image."""
    i = ctx.client.get_image(name)
    if as_json:
        print_json(i)
        return
    print_fields([
        ("name", i.name), ("managed", "yes" if i.managed else "no"), ("source", i.source),
        ("rootfs", i.rootfs), ("kernel", i.kernel or f"(kernel store: {i.kernel_name})"),
        ("initrd", i.initrd or "-"),
        ("size", format_size(i.size_bytes)),
        ("created", datetime.fromtimestamp(i.created_at).isoformat(timespec="seconds")),
    ])


@image.command()
@click.argument("name")
@click.option("--force", is_flag=True, help="Rebuild or pull again even if already local.")
@click.option("--name", "as_name", help="Image name for an OCI pull (default: from the "
              "reference, e.g. debian-bookworm-oci).")
@click.option("--kernel", shell_complete=kernel_names,
              help="Default kernel of a pulled image (default: the image's own "
              "kernel if it has one, else default_kernel).")
@pass_ctx
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
    click.echo(f"{pulled.name} {format_size(pulled.size_bytes)}")


@image.command()
@click.option("--name", required=True, help="Image name.")
@click.option("--rootfs", required=True, type=click.Path(exists=True, dir_okay=False,
              resolve_path=True), help="Raw ext4 root filesystem (stays where it is).")
@click.option("--kernel", required=True, type=click.Path(exists=True, dir_okay=False,
              resolve_path=True), help="Kernel (bzImage/vmlinuz).")
@click.option("--initrd", type=click.Path(exists=True, dir_okay=False, resolve_path=True),
              help="Initial ramdisk.")
@pass_ctx
def register(
    ctx: Context, name: str, rootfs: str, kernel: str, initrd: str | None
) -> None:
    """Register an image from files on this host (they are not copied)."""
    registered = ctx.client.register_image(name, rootfs, kernel, initrd)
    click.echo(f"registered {registered.name}")


@image.command()
@click.argument("name", shell_complete=image_names)
@pass_ctx
def delete(ctx: Context, name: str) -> None:
    """Delete an image (refused while a VM uses it)."""
    deleted = ctx.client.delete_image(name)
    click.echo(f"deleted {deleted.name}")


@image.command()
@click.argument("name", shell_complete=image_names)
@pass_ctx
def promote(ctx: Context, name: str) -> None:
    """Copy a registered image's files into banger's storage (the originals stay)."""
    promoted = ctx.client.promote_image(name)
    click.echo(f"promoted {promoted.name}: {promoted.rootfs}")
