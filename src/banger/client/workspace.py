"""Workspaces from the client's side: copy a local git checkout into a VM and get the guest's
changes back as a patch.

The client never assumes the daemon shares its filesystem: it reads the checkout itself and
streams it to the guest as one tar stream (`tar c` here, `tar x` there), then records the
base commit with the daemon. The stream goes over one ssh connection, where a
`GuestCommand` turns a shell script into the argv that runs it in the guest (the CLI uses
the system ssh with banger's key and pinned host key), or through the guest agent (a
Client's exec_vm and upload_tar), which needs no sshd."""

from __future__ import annotations

import contextlib
import os
import shlex
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from banger.core.errors import HostError, InvalidInput, MissingTool
from banger.core.models import ProgressEvent, Workspace
from banger.core.units import format_size
from banger.core.workspace import (
    DEFAULT_GUEST_PATH,
    ExportHeader,
    Kind,
    check_submodule_gitfile,
    describe_export,
    export_script,
    finish_script,
    guest_error,
    guest_path,
    parse_export_output,
    parse_index,
    parse_prepare_output,
    prepare_script,
    reserve_script,
    reserved_dir,
    select,
    split_z,
    tooling_log,
)

if TYPE_CHECKING:
    from banger.client import Client

GuestCommand = Callable[[str], list[str]]
# What the agent path reads from tar at a time (the daemon re-frames it for the agent).
TAR_CHUNK = 1 << 20
OnProgress = Callable[[ProgressEvent], None]


def _no_progress(_: ProgressEvent) -> None:
    return None


@dataclass(frozen=True)
class Repo:
    root: Path
    head: str  # "" before the first commit


@dataclass
class FileList:
    """What goes into the tar stream, relative to the repository root."""

    paths: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    deleted: int = 0


@dataclass(frozen=True)
class PrepareResult:
    vm: str
    workspace: Workspace
    files: int
    bytes: int
    seconds: float
    readonly: str  # "" | "immutable" | "chmod"
    tooling: str  # "" | "no-mise" | the guest log path


@dataclass(frozen=True)
class ExportResult:
    vm: str
    guest_path: str
    header: ExportHeader
    patch: bytes

    @property
    def description(self) -> str:
        return describe_export(self.header, len(self.patch))


def _git(root: Path, *args: str) -> bytes:
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, check=False
        )
    except FileNotFoundError:
        raise MissingTool("git not found on this machine", hint="install git") from None
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        raise HostError(
            f"git {' '.join(args[:2])} failed in {root}: {message[-1] if message else ''}",
            hint="run the same git command there to see what is wrong",
        )
    return proc.stdout


def find_repo(path: str | os.PathLike[str]) -> Repo:
    """The git checkout that contains `path` (its top level)."""
    start = Path(path).expanduser()
    try:
        is_dir = start.is_dir()
    except PermissionError:
        raise InvalidInput(
            f"{path}: permission denied", hint="pass a checkout your user can read",
        ) from None
    if not is_dir:
        raise InvalidInput(
            f"{path} is not a directory",
            hint="pass the path of a git checkout, e.g. banger vm run ./repo",
        )
    try:
        top = _git(start, "rev-parse", "--show-toplevel")
    except HostError as exc:
        if "not a git repository" in exc.message:
            raise InvalidInput(
                f"{path} is not inside a git repository",
                hint="a workspace is a git checkout: pass one (or run `git init` there first)",
            ) from None
        if "work tree" in exc.message:
            raise InvalidInput(
                f"{path} has no working tree (a bare repository, or inside .git)",
                hint="pass a checkout's directory",
            ) from None
        raise  # e.g. git's "dubious ownership": its own message says what to do
    root = Path(os.fsdecode(top.rstrip(b"\n")))
    if not (root / ".git").is_dir():
        raise InvalidInput(
            f"{root} keeps its git metadata elsewhere (a linked worktree or a submodule "
            "checkout)",
            hint=f"pass the main checkout, or a standalone clone: git clone {root} COPY",
        )
    head = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "-q", "--verify", "HEAD^{commit}"],
        capture_output=True, check=False,
    ).stdout  # empty before the first commit
    return Repo(root, head.decode().strip())


def list_files(root: Path) -> FileList:
    """`.git` plus every tracked and untracked, not-ignored file, as in the working tree;
    initialised submodules the same way, recursively."""
    found = FileList()
    _collect(root, "", found)
    return found


def _collect(root: Path, prefix: str, found: FileList) -> None:
    index = parse_index(_git(root, "ls-files", "-z", "--stage"))
    untracked = split_z(_git(root, "ls-files", "-z", "--others", "--exclude-standard"))
    sizes: dict[str, int] = {}

    def kind(relative: str) -> Kind:
        try:
            st = os.lstat(root / relative)
        except FileNotFoundError:
            return Kind.MISSING
        except NotADirectoryError:
            return Kind.MISSING
        if stat.S_ISREG(st.st_mode):
            sizes[relative] = st.st_size
            return Kind.FILE
        if stat.S_ISLNK(st.st_mode):
            sizes[relative] = 0
            return Kind.SYMLINK
        if stat.S_ISDIR(st.st_mode):
            return Kind.DIR
        return Kind.OTHER

    selection = select(index, untracked, kind)
    found.paths.append(prefix + ".git")
    found.paths.extend(prefix + path for path in selection.paths)
    found.files += len(selection.paths)
    found.bytes += sum(sizes.get(path, 0) for path in selection.paths)
    found.deleted += selection.deleted
    for submodule in selection.submodules:
        directory = root / submodule
        dotgit = directory / ".git"
        if dotgit.is_file():
            check_submodule_gitfile(prefix + submodule, dotgit.read_text(errors="replace"))
            _collect(directory, f"{prefix}{submodule}/", found)
        elif dotgit.is_dir():
            _collect(directory, f"{prefix}{submodule}/", found)
        elif directory.is_dir():
            found.paths.append(prefix + submodule)  # not checked out: an empty directory


@dataclass(frozen=True)
class Streamed:
    status: int  # the guest side's exit status
    stdout: bytes
    stderr: str
    tar_status: int
    tar_errors: str


@contextlib.contextmanager
def _tar_of(root: Path, paths: list[str]) -> Iterator[tuple[subprocess.Popen[bytes], IO[bytes]]]:
    """`tar c` of `paths` (under `root`) on its stdout; its stderr goes to the file."""
    with tempfile.TemporaryFile() as listing, tempfile.TemporaryFile() as tar_errors:
        # "./" keeps a name that starts with "-" from reading as an option to tar.
        listing.write(b"".join(b"./" + os.fsencode(p) + b"\0" for p in paths))
        listing.seek(0)
        try:
            tar = subprocess.Popen(
                ["tar", "-c", "-f", "-", "--null", "-T", "-"], cwd=root, stdin=listing,
                stdout=subprocess.PIPE, stderr=tar_errors,
                env={**os.environ, "COPYFILE_DISABLE": "1"},  # no AppleDouble files (bsdtar)
            )
        except FileNotFoundError:
            raise MissingTool("tar not found on this machine", hint="install tar") from None
        try:
            yield tar, tar_errors
        finally:
            if tar.poll() is None:
                tar.kill()
                tar.wait()


def _errors_of(tar_errors: IO[bytes]) -> str:
    tar_errors.seek(0)
    return tar_errors.read().decode(errors="replace").strip()


def stream_to_guest(root: Path, paths: list[str], argv: list[str]) -> Streamed:
    """`tar c` of `paths` (under `root`) piped into `argv`'s stdin: one stream, one
    connection, no Python in the data path."""
    with _tar_of(root, paths) as (tar, tar_errors):
        assert tar.stdout is not None
        try:
            guest = subprocess.Popen(
                argv, stdin=tar.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except FileNotFoundError:
            raise MissingTool(f"{argv[0]} not found on this machine") from None
        finally:
            tar.stdout.close()  # the guest side holds the only reader now
        out, err = guest.communicate()
        tar_status = tar.wait()
        message = _errors_of(tar_errors)
    return Streamed(guest.returncode, out, err.decode(errors="replace"), tar_status, message)


def send_through_agent(
    client: Client, vm: str, root: Path, paths: list[str], dest: str, **finish: Any,
) -> Streamed:
    """The same copy through the guest agent, without ssh: reserve_script, the tar stream
    into the directory it made (`Client.upload_tar`), then finish_script (`finish`: its
    options), each on the daemon's open channel to the agent."""
    status, out, err = _run_script(client, vm, reserve_script(dest))
    if status != 0:
        return Streamed(status, out, err, 0, "")
    reserved = reserved_dir(dest, out)
    with _tar_of(root, paths) as (tar, tar_errors):
        assert tar.stdout is not None
        try:
            client.upload_tar(vm, reserved, iter(partial(tar.stdout.read, TAR_CHUNK), b""))
        except BaseException:
            _run_script(client, vm, f"rm -rf -- {shlex.quote(reserved)}")
            raise
        tar_status = tar.wait()
        message = _errors_of(tar_errors)
    status, out, err = _run_script(client, vm, finish_script(dest, reserved, **finish))
    return Streamed(status, out, err, tar_status, message)


def _run_script(client: Client, vm: str, script: str) -> tuple[int, bytes, str]:
    out, err = bytearray(), bytearray()
    result = client.exec_vm(vm, shell_command(script), on_stdout=out.extend,
                            on_stderr=err.extend)
    signal = result.get("signal")
    status = 128 + int(signal) if signal is not None else int(result.get("exit_code") or 0)
    return status, bytes(out), err.decode(errors="replace")


def copy_repo(
    guest: GuestCommand | Client, repo: Repo, *, vm: str, dest: str,
    branch: str | None = None, from_ref: str | None = None, readonly: bool = False,
    bootstrap_tooling: bool = False, on_progress: OnProgress = _no_progress,
) -> tuple[PrepareResult, FileList]:
    """Copy `repo` to `dest` in the guest (not recorded with the daemon: see prepare):
    through `guest`'s ssh command, or a Client's guest agent."""
    dest = guest_path(dest)
    if from_ref and not branch:
        raise InvalidInput("--from needs --branch", hint="--branch NAME --from REF")
    started = time.monotonic()
    files = list_files(repo.root)
    on_progress(ProgressEvent(
        "workspace",
        f"copying {repo.root} to {vm}:{dest} ({files.files} files, "
        f"{format_size(files.bytes)}, plus .git)",
    ))
    options: dict[str, Any] = {
        "branch": branch, "from_ref": from_ref, "readonly": readonly,
        "tooling_log_path": tooling_log(repo.root.name) if bootstrap_tooling else None,
    }
    if callable(guest):
        streamed = stream_to_guest(
            repo.root, files.paths, guest(prepare_script(dest, **options))
        )
    else:
        streamed = send_through_agent(guest, vm, repo.root, files.paths, dest, **options)
    if streamed.status != 0:
        raise guest_error(
            streamed.status, streamed.stderr, vm=vm, dest=dest, stage="copying the workspace"
        )
    if streamed.tar_status != 0:
        # The guest took the stream, so the copy is there; what tar could not read (a file
        # that vanished or changed meanwhile, an unreadable one) is worth a warning.
        problems = [line for line in streamed.tar_errors.splitlines()
                    if "Exiting with failure status" not in line]
        problems = problems or [f"tar exited {streamed.tar_status}"]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        on_progress(ProgressEvent("warning", f"warning: {problems[0]}{more}"))
    reported = parse_prepare_output(streamed.stdout)
    seconds = time.monotonic() - started
    workspace = Workspace(
        guest_path=dest, base_commit=reported.head, source=str(repo.root),
        branch=branch or "", readonly=readonly,
    )
    result = PrepareResult(
        vm, workspace, files.files, files.bytes, seconds, reported.readonly, reported.tooling
    )
    return result, files


def prepare_workspace(
    client: Client, vm: str, path: str | os.PathLike[str], guest: GuestCommand | None, *,
    guest_path: str = DEFAULT_GUEST_PATH, branch: str | None = None,
    from_ref: str | None = None, readonly: bool = False, bootstrap_tooling: bool = False,
    on_progress: OnProgress = _no_progress, repo: Repo | None = None,
) -> PrepareResult:
    """Copy the checkout at `path` into `vm` (over ssh with `guest`; None: through the guest
    agent) and record its base commit with the daemon."""
    repo = repo or find_repo(path)
    result, _ = copy_repo(
        guest if guest is not None else client, repo, vm=vm, dest=guest_path, branch=branch,
        from_ref=from_ref, readonly=readonly, bootstrap_tooling=bootstrap_tooling,
        on_progress=on_progress,
    )
    recorded = client.record_workspace(vm, result.workspace)
    on_progress(ProgressEvent(
        "ready",
        f"workspace ready at {vm}:{recorded.guest_path} "
        f"(base {recorded.base_commit[:12] or 'none'}, {result.seconds:.1f}s)",
    ))
    return PrepareResult(
        vm, recorded, result.files, result.bytes, result.seconds, result.readonly,
        result.tooling,
    )


def export_from_guest(guest: GuestCommand, *, vm: str, dest: str, base: str) -> ExportResult:
    """The patch of `dest` in the guest against `base` (no daemon involved)."""
    dest = guest_path(dest)
    if "\0" in base or "\n" in base:
        raise InvalidInput(f"invalid base commit {base!r}")
    proc = subprocess.run(guest(export_script(dest, base)), capture_output=True, check=False)
    if proc.returncode != 0:
        raise guest_error(
            proc.returncode, proc.stderr.decode(errors="replace"), vm=vm, dest=dest,
            stage="exporting the workspace",
        )
    header, patch = parse_export_output(proc.stdout)
    return ExportResult(vm, dest, header, patch)


def export_workspace(
    client: Client, vm: str, guest: GuestCommand, *, guest_path: str = DEFAULT_GUEST_PATH,
    base: str | None = None,
) -> ExportResult:
    """Everything changed in the guest copy since its recorded base commit (or `base`)."""
    if base is None:
        base = client.get_workspace(vm, guest_path).base_commit
    return export_from_guest(guest, vm=vm, dest=guest_path, base=base)


def shell_command(script: str) -> list[str]:
    """The command that runs `script` in the guest (for GuestCommand implementations that
    take an argv, such as banger.cli.sshexec.ssh_argv)."""
    return ["sh", "-c", script]

