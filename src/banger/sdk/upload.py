"""`sb.upload`: a local directory into the guest, by the workspace copy rules of
`banger vm run ./repo` (client/workspace.py picks the files, core/workspace.py's prepare
script unpacks them into place), through the guest agent instead of ssh."""

from __future__ import annotations

import os
import shlex
import subprocess
import uuid
import warnings
from pathlib import Path

from banger.client import Client
from banger.client.workspace import find_repo, list_files
from banger.core.errors import InvalidInput, MissingTool
from banger.core.models import Workspace
from banger.core.workspace import (
    guest_error,
    guest_path,
    parse_prepare_output,
    prepare_script,
)


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
    archive = f"/tmp/.banger-upload-{uuid.uuid4().hex}.tar"
    client.write_file(vm, archive, _tar(root, paths), 0o600)
    # The prepare script reads the tar on its stdin, as over ssh; the file goes once open.
    script = (f"exec < {shlex.quote(archive)}\nrm -f -- {shlex.quote(archive)}\n"
              + prepare_script(dest, branch=branch, readonly=readonly))
    stdout, stderr = bytearray(), bytearray()
    result = client.exec_vm(vm, ["sh", "-c", script], on_stdout=stdout.extend,
                            on_stderr=stderr.extend)
    if result.get("exit_code") != 0:
        raise guest_error(int(result.get("exit_code") or 1), stderr.decode(errors="replace"),
                          vm=vm, dest=dest, stage="copying the directory")
    head = parse_prepare_output(bytes(stdout)).head
    workspace = Workspace(guest_path=dest, base_commit=head, source=str(root),
                          branch=branch or "", readonly=readonly)
    if repo is None:
        return workspace
    return client.record_workspace(vm, workspace)


def _in_git_checkout(root: Path) -> bool:
    try:
        proc = subprocess.run(["git", "-C", str(root), "rev-parse", "--is-inside-work-tree"],
                              capture_output=True, check=False)
    except FileNotFoundError:
        return False  # no git here: not something to copy as a checkout
    return proc.returncode == 0 and proc.stdout.strip() == b"true"


def _tar(root: Path, paths: list[str]) -> bytes:
    """A tar of `paths` under `root`, as `vm run` streams it (in memory: the agent's file
    write takes the whole content)."""
    listing = b"".join(b"./" + os.fsencode(p) + b"\0" for p in paths)
    try:
        proc = subprocess.run(
            ["tar", "-c", "-f", "-", "--null", "-T", "-"], cwd=root, input=listing,
            capture_output=True, check=False, env={**os.environ, "COPYFILE_DISABLE": "1"},
        )
    except FileNotFoundError:
        raise MissingTool("tar not found on this machine", hint="install tar") from None
    if proc.returncode != 0:
        # What tar could not read (a file that vanished or changed meanwhile) is left out.
        problem = proc.stderr.decode(errors="replace").strip().splitlines()
        warnings.warn(f"tar: {problem[0] if problem else proc.returncode}", stacklevel=3)
    return proc.stdout
