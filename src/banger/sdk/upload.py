"""`sb.upload`: a local directory into the guest, by the workspace copy rules of
`banger vm run ./repo` (client/workspace.py picks the files, core/workspace.py's guest
scripts put them in place), through the guest agent instead of ssh: the reserve script
makes an empty directory next to the destination, the tar stream goes into it through the
agent's tar upload (streamed, any size), and the finish script moves it into place."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

from banger.client import Client
from banger.client.workspace import find_repo, list_files
from banger.core.errors import BangerError, InvalidInput, MissingTool
from banger.core.models import Workspace
from banger.core.workspace import (
    finish_script,
    guest_error,
    guest_path,
    parse_prepare_output,
    reserve_script,
    reserved_dir,
)

_PIECE = 1 << 20


def upload_directory(
    client: Client, vm: str, local: str | os.PathLike[str], dest: str, *,
    branch: str | None = None, readonly: bool = False,
) -> Workspace:
    dest = guest_path(dest)
    root = Path(local).expanduser()
    if not root.is_dir():
        raise InvalidInput(f"{local} is not a directory", hint="sb.upload(DIRECTORY, DEST)")
    repo = find_repo(root) if _in_git_checkout(root) else None
    if repo is None and branch:
        raise InvalidInput(f"{local} is not a git checkout: it has no branch to switch")
    if repo is not None:
        root, paths = repo.root, list_files(repo.root).paths
    else:
        paths = sorted(os.listdir(root))
    reserved = reserved_dir(dest, _run(client, vm, reserve_script(dest), dest))
    try:
        client.upload_tar(vm, reserved, _tar(root, paths))
    except BaseException:
        with contextlib.suppress(BangerError):
            client.remove_file(vm, reserved, recursive=True)
        raise
    finished = _run(client, vm, finish_script(dest, reserved, branch=branch,
                                              readonly=readonly), dest)
    workspace = Workspace(guest_path=dest, base_commit=parse_prepare_output(finished).head,
                          source=str(root), branch=branch or "", readonly=readonly)
    if repo is None:
        return workspace
    return client.record_workspace(vm, workspace)


def _run(client: Client, vm: str, script: str, dest: str) -> bytes:
    """The stdout of a workspace guest script; its typed error if it fails."""
    stdout, stderr = bytearray(), bytearray()
    result = client.exec_vm(vm, ["sh", "-c", script], on_stdout=stdout.extend,
                            on_stderr=stderr.extend)
    if result.get("exit_code") != 0:
        raise guest_error(int(result.get("exit_code") or 1), stderr.decode(errors="replace"),
                          vm=vm, dest=dest, stage="copying the directory")
    return bytes(stdout)


def _in_git_checkout(root: Path) -> bool:
    try:
        proc = subprocess.run(["git", "-C", str(root), "rev-parse", "--is-inside-work-tree"],
                              capture_output=True, check=False)
    except FileNotFoundError:
        return False  # no git here: not something to copy as a checkout
    return proc.returncode == 0 and proc.stdout.strip() == b"true"


def _tar(root: Path, paths: list[str]) -> Iterator[bytes]:
    """A tar stream of `paths` under `root`, as `vm run` sends it, read as it is sent."""
    with tempfile.TemporaryFile() as listing, tempfile.TemporaryFile() as errors:
        # Files, not pipes: tar archives while it reads the names, and a pipe we filled
        # (or one it fills with complaints) while it waits for us would stall both.
        listing.write(b"".join(b"./" + os.fsencode(p) + b"\0" for p in paths))
        listing.seek(0)
        try:
            tar = subprocess.Popen(
                ["tar", "-c", "-f", "-", "--null", "-T", "-"], cwd=root, stdin=listing,
                stdout=subprocess.PIPE, stderr=errors,
                env={**os.environ, "COPYFILE_DISABLE": "1"},  # no AppleDouble files (bsdtar)
            )
        except FileNotFoundError:
            raise MissingTool("tar not found on this machine", hint="install tar") from None
        assert tar.stdout is not None
        try:
            while piece := tar.stdout.read(_PIECE):
                yield piece
        except BaseException:  # the upload failed, or stopped reading: tar has no reader
            tar.kill()
            raise
        finally:
            tar.wait()
            tar.stdout.close()
        errors.seek(0)
        problems = errors.read().decode(errors="replace").strip().splitlines()
    if tar.returncode != 0:
        # What tar could not read (a file that vanished or changed meanwhile) is left out.
        warnings.warn(f"tar: {problems[0] if problems else tar.returncode}", stacklevel=2)
