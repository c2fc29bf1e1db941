"""`banger vm workspace ...`: copy a git checkout into a running VM, export its changes."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from banger.cli.context import Context
from banger.cli.render import ProgressPrinter, print_json, print_table
from banger.cli.spec import DIR, FILE, VMS, Arg, Group, Opt, echo, path
from banger.core.errors import InvalidInput

if TYPE_CHECKING:
    from banger.client.workspace import GuestCommand, PrepareResult, Repo

DEFAULT_GUEST_PATH = "/root/repo"


def guest_command(ctx: Context, vm: str, access: dict[str, str] | None = None) -> GuestCommand:
    """Scripts run in the guest through the system ssh, with banger's key and pinned host
    key (StrictHostKeyChecking=yes)."""
    from banger.cli.sshexec import ssh_argv
    from banger.client.guestreach import guest_access
    from banger.client.workspace import shell_command

    reach = access if access is not None else guest_access(ctx.client, vm)
    return lambda script: ssh_argv(reach, shell_command(script), interactive=False)


def prepare(
    ctx: Context, vm: str, path: str, *, access: dict[str, str] | None = None,
    guest_path: str = DEFAULT_GUEST_PATH, branch: str | None = None,
    from_ref: str | None = None, readonly: bool = False, bootstrap_tooling: bool = False,
    repo: Repo | None = None, through_agent: bool = False,
) -> PrepareResult:
    """Copy and record a workspace, rendering progress (shared with `vm run PATH`); over
    ssh, or `through_agent`."""
    from banger.client.workspace import prepare_workspace

    printer = ProgressPrinter()
    try:
        return prepare_workspace(
            ctx.client, vm, path, None if through_agent else guest_command(ctx, vm, access),
            guest_path=guest_path,
            branch=branch, from_ref=from_ref, readonly=readonly,
            bootstrap_tooling=bootstrap_tooling, on_progress=printer, repo=repo,
        )
    finally:
        printer.done()


workspace = Group(
    "workspace", "Copy a git checkout into a VM; get the guest's changes back as a patch."
)
NAME = Arg("name", complete=VMS)
JSON = Opt("--json", dest="as_json", flag=True, help="Machine-readable output.")


@workspace.command(
    NAME,
    Arg("path", nargs="?", default=".", type=path(file_okay=False), complete=DIR),
    Opt("--guest-path", default=DEFAULT_GUEST_PATH, metavar="PATH",
        help=f"Where the copy goes in the guest (default: {DEFAULT_GUEST_PATH})."),
    Opt("--readonly", flag=True,
        help="Make the guest copy read-only (immutable, even for root)."),
    Opt("--branch", help="Check out this branch in the guest copy (made if new)."),
    Opt("--from", dest="from_ref", metavar="REF", help="Start --branch from this ref."),
    JSON,
    name="prepare",
)
def prepare_cmd(
    ctx: Context, name: str, path: str, guest_path: str, readonly: bool, branch: str | None,
    from_ref: str | None, as_json: bool,
) -> None:
    """Copy the git checkout at PATH (default: .) into the running VM NAME.

    Copies .git and every tracked and untracked, not-ignored file as it is now
    (uncommitted edits, modes and symlinks included), and records the checkout's
    HEAD as the base commit for `banger vm workspace export`.
    """
    result = prepare(
        ctx, name, path, guest_path=guest_path, branch=branch, from_ref=from_ref,
        readonly=readonly,
    )
    if as_json:
        print_json(result)
        return
    note = ""
    if result.readonly == "chmod":
        note = " (read-only by mode bits only: this filesystem has no immutable flag)"
    echo(f"{name}:{result.workspace.guest_path} "
         f"{result.workspace.base_commit or '(no commits)'}{note}")


@workspace.command(
    NAME,
    Opt("--guest-path", default=DEFAULT_GUEST_PATH, metavar="PATH",
        help=f"The guest copy to export (default: {DEFAULT_GUEST_PATH})."),
    Opt("--base", metavar="COMMIT", help="Diff against this commit instead of the recorded base."),
    Opt("-o", "--output", type=path(dir_okay=False), metavar="FILE", complete=FILE,
        help="Write the patch to FILE instead of stdout."),
    Opt("--json", dest="as_json", flag=True,
        help="Print a summary as JSON (needs -o: the patch goes to the file)."),
    name="export",
)
def export_cmd(
    ctx: Context, name: str, guest_path: str, base: str | None, output: str | None,
    as_json: bool,
) -> None:
    """Print the changes made in the guest copy since its base commit, as a patch.

    Uncommitted guest changes only: a `git diff` (apply with `git apply`).
    Guest commits on top of the base: a `git format-patch` series (apply with
    `git am`), uncommitted changes as its last patch. stderr says which.
    """
    from banger.client.workspace import export_workspace

    if as_json and not output:
        raise InvalidInput(
            "--json needs -o FILE", hint="the patch goes to the file, the summary to stdout"
        )
    result = export_workspace(
        ctx.client, name, guest_command(ctx, name), guest_path=guest_path, base=base
    )
    if output:
        with open(output, "wb") as f:
            f.write(result.patch)
    else:
        sys.stdout.buffer.write(result.patch)
        sys.stdout.buffer.flush()
    if as_json:
        import dataclasses

        summary: dict[str, Any] = {
            "vm": name, "guest_path": result.guest_path, "output": output,
            "bytes": len(result.patch), "apply_with": _apply_with(result.header.format),
            **dataclasses.asdict(result.header),
        }
        print_json(summary)
    echo(result.description, err=True)


@workspace.command(NAME, JSON, name="show")
def show_cmd(ctx: Context, name: str, as_json: bool) -> None:
    """List the workspaces recorded for VM NAME."""
    workspaces = ctx.client.list_workspaces(name)
    if as_json:
        print_json(workspaces)
        return
    print_table(
        ["GUEST PATH", "BASE", "BRANCH", "READONLY", "SOURCE"],
        [[w.guest_path, w.base_commit[:12] or "-", w.branch or "-",
          "yes" if w.readonly else "no", w.source] for w in workspaces],
    )


def _apply_with(patch_format: str) -> str:
    return "git am" if patch_format == "mbox" else "git apply"
