"""`banger kernel ...`."""

from __future__ import annotations

from banger.cli.context import Context
from banger.cli.render import ProgressPrinter, iso_time, print_fields, print_json, print_table
from banger.cli.spec import DIR, FILE, HOST_PATH, KERNELS, Arg, Group, Opt, echo
from banger.core.units import format_size

kernel = Group("kernel", "Manage kernels (catalog kernels from Debian, or registered files).")
NAME = Arg("name", complete=KERNELS)
JSON = Opt("--json", dest="as_json", flag=True, help="Machine-readable output.")


@kernel.command(JSON, name="list")
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


@kernel.command(NAME, JSON)
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
        ("created", iso_time(k.created_at)),
    ])


@kernel.command(NAME, Opt("--force", flag=True, help="Fetch again even if already local."))
def pull(ctx: Context, name: str, force: bool) -> None:
    """Fetch a catalog kernel (e.g. generic-6.1) from the host's Debian mirror."""
    printer = ProgressPrinter()
    try:
        pulled = ctx.client.pull_kernel(name, force=force, on_progress=printer)
    finally:
        printer.done()
    echo(f"{pulled.name} {pulled.version}")


@kernel.command(
    Opt("--name", required=True, help="Kernel name."),
    Opt("--vmlinuz", required=True, type=HOST_PATH, complete=FILE,
        help="Kernel image (bzImage/vmlinuz)."),
    Opt("--initrd", type=HOST_PATH, complete=FILE, help="Initial ramdisk."),
    Opt("--vmlinux", type=HOST_PATH, complete=FILE,
        help="Uncompressed ELF kernel (Firecracker)."),
    Opt("--modules", type=HOST_PATH, complete=DIR,
        help="Modules tree (lib/modules/VERSION)."),
)
def register(
    ctx: Context, name: str, vmlinuz: str, initrd: str | None, vmlinux: str | None,
    modules: str | None,
) -> None:
    """Register a kernel from files on this host (they are not copied)."""
    ctx.require_local_daemon("kernel register")
    made = ctx.client.register_kernel(name, vmlinuz, initrd, vmlinux=vmlinux, modules=modules)
    echo(f"registered {made.name}")


@kernel.command(NAME)
def delete(ctx: Context, name: str) -> None:
    """Delete a kernel (refused while a VM or an image uses it)."""
    deleted = ctx.client.delete_kernel(name)
    echo(f"deleted {deleted.name}")
