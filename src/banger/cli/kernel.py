"""`banger kernel ...`."""

from __future__ import annotations

from datetime import datetime

import click

from banger.cli.completion import kernel_names
from banger.cli.context import Context, pass_ctx
from banger.cli.render import ProgressPrinter, print_fields, print_json, print_table
from banger.core.units import format_size


@click.group()
def kernel() -> None:
    """Manage kernels (catalog kernels from Debian, or registered files)."""


@kernel.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def list_(ctx: Context, as_json: bool) -> None:
    """List catalog kernels and local ones."""
    entries = ctx.client.list_kernels()
    if as_json:
        print_json(entries)
        return
    print_table(
        ["NAME", "LOCAL", "VERSION", "DESCRIPTION"],
        [[e["name"], "yes" if e["local"] else "no", e["version"] or "-", e["description"]]
         for e in entries],
    )


@kernel.command()
@click.argument("name", shell_complete=kernel_names)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def show(ctx: Context, name: str, as_json: bool) -> None:
    """Show one local kernel."""
    k = ctx.client.get_kernel(name)
    if as_json:
        print_json(k)
        return
    print_fields([
        ("name", k.name), ("version", k.version or "-"), ("managed", "yes" if k.managed else "no"),
        ("source", k.source), ("vmlinuz", k.vmlinuz), ("vmlinux", k.vmlinux or "-"),
        ("initrd", k.initrd or "-"), ("modules", k.modules or "-"),
        ("size", format_size(k.size_bytes)),
        ("created", datetime.fromtimestamp(k.created_at).isoformat(timespec="seconds")),
    ])


@kernel.command()
@click.argument("name", shell_complete=kernel_names)
@click.option("--force", is_flag=True, help="Fetch again even if already local.")
@pass_ctx
def pull(ctx: Context, name: str, force: bool) -> None:
    """Fetch a catalog kernel (e.g. generic-6.1) from the host's Debian mirror."""
    printer = ProgressPrinter()
    try:
        pulled = ctx.client.pull_kernel(name, force=force, on_progress=printer)
    finally:
        printer.done()
    click.echo(f"{pulled.name} {pulled.version}")


@kernel.command()
@click.option("--name", required=True, help="Kernel name.")
@click.option("--vmlinuz", required=True, type=click.Path(exists=True, dir_okay=False,
              resolve_path=True), help="Kernel image (bzImage/vmlinuz).")
@click.option("--initrd", type=click.Path(exists=True, dir_okay=False, resolve_path=True),
              help="Initial ramdisk.")
@click.option("--vmlinux", type=click.Path(exists=True, dir_okay=False, resolve_path=True),
              help="Uncompressed ELF kernel (Firecracker).")
@click.option("--modules", type=click.Path(exists=True, file_okay=False, resolve_path=True),
              help="Modules tree (lib/modules/VERSION).")
@pass_ctx
def register(
    ctx: Context, name: str, vmlinuz: str, initrd: str | None, vmlinux: str | None,
    modules: str | None,
) -> None:
    """Register a kernel from files on this host (they are not copied)."""
    made = ctx.client.register_kernel(name, vmlinuz, initrd, vmlinux=vmlinux, modules=modules)
    click.echo(f"registered {made.name}")


@kernel.command()
@click.argument("name", shell_complete=kernel_names)
@pass_ctx
def delete(ctx: Context, name: str) -> None:
    """Delete a kernel (refused while a VM or an image uses it)."""
    deleted = ctx.client.delete_kernel(name)
    click.echo(f"deleted {deleted.name}")
