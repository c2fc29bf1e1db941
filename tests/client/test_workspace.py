"""Workspaces against real git repositories in temp dirs, with the guest played by `sh` on
this machine (the same scripts ssh would carry): file selection, the copy, export, apply."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from banger.client.workspace import (
    FileList,
    PrepareResult,
    Repo,
    copy_repo,
    export_from_guest,
    find_repo,
    list_files,
    shell_command,
)
from banger.core.errors import Conflict, GuestFileFailed, HostError, InvalidInput, NotFound
from banger.core.models import ProgressEvent
from banger.core.workspace import (
    finish_script,
    parse_prepare_output,
    reserve_script,
    reserved_dir,
)

NEWLINE_NAME = "new\nline.txt"


@pytest.fixture(autouse=True)
def git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.test")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def write(path: Path, text: str | bytes, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    if mode is not None:
        path.chmod(mode)


def status(repo: Path) -> str:
    return git(repo, "status", "--porcelain=v1", "-z", "--untracked-files=all")


def tree_of_working_state(repo: Path, scratch: Path) -> str:
    """The tree id of everything in the working tree git would commit (modes, symlinks,
    contents), without touching the repository's own index."""
    env = {**os.environ, "GIT_INDEX_FILE": str(scratch)}
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=env)
    tree = subprocess.run(["git", "-C", str(repo), "write-tree"], check=True, env=env,
                          capture_output=True, text=True).stdout.strip()
    scratch.unlink()
    return tree


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A checkout with everything file selection must get right, plus uncommitted edits."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write(root / ".gitignore", "*.log\nbuild/\n")
    write(root / "src/app.py", "print('v1')\n")
    write(root / "src/.gitignore", "*.cache\n")
    write(root / "src/data.cache", "ignored by the nested .gitignore\n")
    write(root / "run.sh", "#!/bin/sh\necho hi\n", 0o755)
    write(root / "doomed.txt", "deleted before the copy\n")
    write(root / "with space.txt", "space\n")
    write(root / NEWLINE_NAME, "newline\n")
    write(root / "ünïcode-名前.txt", "unicode\n")
    write(root / "-dash.txt", "looks like an option\n")
    write(root / "binary.bin", bytes(range(256)) * 8)
    (root / "link-to-app").symlink_to("src/app.py")
    (root / "dangling").symlink_to("does-not-exist")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "initial")
    write(root / "src/app.py", "print('v2, uncommitted')\n")
    (root / "doomed.txt").unlink()
    write(root / "untracked.txt", "new and not ignored\n")
    write(root / "untracked dir/inner.txt", "also new\n")
    write(root / "debug.log", "ignored\n")
    write(root / "build/out.o", "ignored directory\n")
    write(root / "node.cache", "not ignored at the top (only in src/)\n")
    return root


@pytest.fixture
def guest(tmp_path: Path) -> Iterator[Path]:
    """The stand-in for the guest's /root."""
    root = tmp_path / "guest-root"
    root.mkdir()
    yield root
    # A --readonly copy is immutable: let pytest clean it up.
    subprocess.run(["chattr", "-R", "-i", str(root)], capture_output=True, check=False)


def prepare(repo: Path, dest: Path, **kwargs: Any) -> PrepareResult:
    result, _ = copy_repo(shell_command, find_repo(repo), vm="local", dest=str(dest), **kwargs)
    return result


# selection


def test_selection_is_git_metadata_tracked_and_untracked_not_ignored(repo: Path) -> None:
    files = list_files(repo)
    assert set(files.paths) == {
        ".git", ".gitignore", "src/app.py", "src/.gitignore", "run.sh", "with space.txt",
        NEWLINE_NAME, "ünïcode-名前.txt", "-dash.txt", "binary.bin", "link-to-app",
        "dangling", "untracked.txt", "untracked dir/inner.txt", "node.cache",
    }
    assert files.deleted == 1
    assert files.files == len(files.paths) - 1


def test_a_subdirectory_means_its_repository(repo: Path) -> None:
    assert find_repo(repo / "src") == Repo(repo, git(repo, "rev-parse", "HEAD").strip())


def test_a_repository_without_commits_has_no_head(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    write(tmp_path / "a.txt", "a\n")
    assert find_repo(tmp_path).head == ""
    assert list_files(tmp_path).paths == [".git", "a.txt"]


def test_a_path_outside_git_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="is not inside a git repository") as info:
        find_repo(tmp_path)
    assert "git init" in info.value.hint
    with pytest.raises(InvalidInput, match="is not a directory"):
        find_repo(tmp_path / "missing")


def test_an_unreadable_path_is_a_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(self: Path) -> bool:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "is_dir", denied)
    with pytest.raises(InvalidInput, match="permission denied"):
        find_repo(tmp_path / "theirs")


def test_a_linked_worktree_is_refused_with_a_hint(repo: Path, tmp_path: Path) -> None:
    git(repo, "worktree", "add", "-q", str(tmp_path / "wt"))
    with pytest.raises(InvalidInput, match="linked worktree") as info:
        find_repo(tmp_path / "wt")
    assert "git clone" in info.value.hint


def test_an_untracked_nested_repository_comes_whole(repo: Path) -> None:
    nested = repo / "vendor/lib"
    nested.mkdir(parents=True)
    git(nested, "init", "-q")
    write(nested / "x.txt", "x\n")
    assert "vendor/lib" in list_files(repo).paths


@pytest.fixture
def with_submodule(repo: Path, tmp_path: Path) -> Path:
    lib = tmp_path / "lib"
    lib.mkdir()
    git(lib, "init", "-q", "-b", "main")
    write(lib / "lib.txt", "library\n")
    write(lib / ".gitignore", "*.tmp\n")
    git(lib, "add", "-A")
    git(lib, "commit", "-qm", "lib")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "libs/lib")
    git(repo, "commit", "-qm", "add submodule")
    write(repo / "libs/lib/lib.txt", "edited inside the submodule\n")
    write(repo / "libs/lib/scratch.tmp", "ignored inside the submodule\n")
    return repo


def test_submodules_are_copied_with_the_same_rules(with_submodule: Path, guest: Path) -> None:
    files = list_files(with_submodule)
    assert {"libs/lib/.git", "libs/lib/lib.txt", "libs/lib/.gitignore", ".gitmodules"} <= set(
        files.paths
    )
    assert "libs/lib/scratch.tmp" not in files.paths
    prepare(with_submodule, guest / "repo")
    assert status(guest / "repo") == status(with_submodule)
    assert git(guest / "repo/libs/lib", "status", "--porcelain") == " M lib.txt\n"


# copy


def test_copy_reproduces_the_working_tree_and_git_status(repo: Path, guest: Path) -> None:
    result = prepare(repo, guest / "repo")
    copy = guest / "repo"
    assert status(copy) == status(repo)
    assert (copy / "src/app.py").read_text() == "print('v2, uncommitted')\n"
    assert (copy / "untracked dir/inner.txt").exists()
    assert not (copy / "doomed.txt").exists()
    for ignored in ("debug.log", "build", "src/data.cache"):
        assert not (copy / ignored).exists()
    assert os.readlink(copy / "link-to-app") == "src/app.py"
    assert os.readlink(copy / "dangling") == "does-not-exist"
    assert stat.S_IMODE((copy / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((copy / "with space.txt").stat().st_mode) == 0o644
    assert (copy / NEWLINE_NAME).read_text() == "newline\n"
    assert (copy / "binary.bin").read_bytes() == (repo / "binary.bin").read_bytes()
    assert git(copy, "rev-parse", "HEAD") == git(repo, "rev-parse", "HEAD")
    assert result.workspace.base_commit == git(repo, "rev-parse", "HEAD").strip()
    assert not list(guest.glob(".banger-workspace.*"))


def test_an_existing_non_empty_guest_path_is_refused(repo: Path, guest: Path) -> None:
    write(guest / "repo/precious.txt", "mine\n")
    with pytest.raises(Conflict, match="already exists") as info:
        prepare(repo, guest / "repo")
    assert "--guest-path" in info.value.hint
    assert (guest / "repo/precious.txt").read_text() == "mine\n"
    (guest / "empty").mkdir()
    prepare(repo, guest / "empty")  # an empty directory is fine


def test_branch_from_ref_in_the_guest_copy_only(repo: Path, guest: Path) -> None:
    first = git(repo, "rev-parse", "HEAD").strip()
    write(repo / "later.txt", "later\n")
    git(repo, "add", "later.txt")
    git(repo, "commit", "-qm", "later")
    result = prepare(repo, guest / "repo", branch="feature", from_ref=first)
    copy = guest / "repo"
    assert git(copy, "branch", "--show-current").strip() == "feature"
    assert git(copy, "rev-parse", "HEAD").strip() == first
    assert result.workspace.base_commit == first
    assert result.workspace.branch == "feature"
    assert git(repo, "branch", "--show-current").strip() == "main"
    # Without --from: an existing branch is checked out, a new one made at HEAD.
    prepare(repo, guest / "again", branch="main")
    assert git(guest / "again", "branch", "--show-current").strip() == "main"


def test_a_bad_from_ref_fails_and_leaves_nothing(repo: Path, guest: Path) -> None:
    with pytest.raises(InvalidInput, match="could not switch branch"):
        prepare(repo, guest / "repo", branch="x", from_ref="no-such-ref")
    assert list(guest.iterdir()) == []
    with pytest.raises(InvalidInput, match="--from needs --branch"):
        prepare(repo, guest / "repo", from_ref="HEAD")


def test_readonly_copy_cannot_be_written_but_git_reads_and_exports_it(
    repo: Path, guest: Path
) -> None:
    result = prepare(repo, guest / "repo", readonly=True)
    copy = guest / "repo"
    assert result.readonly in ("immutable", "chmod")
    assert not stat.S_IMODE((copy / "src/app.py").stat().st_mode) & 0o222
    if result.readonly == "immutable":
        touched = subprocess.run(["touch", str(copy / "new")], capture_output=True)
        assert touched.returncode != 0  # even for root
    assert status(copy) == status(repo)
    exported = export_from_guest(shell_command, vm="local", dest=str(copy),
                                 base=git(repo, "rev-parse", "HEAD").strip())
    assert exported.header.format == "diff"
    assert b"v2, uncommitted" in exported.patch


def test_tooling_bootstrap_runs_mise_in_the_background(
    repo: Path, guest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import banger.client.workspace as client_workspace

    log = tmp_path / "cache/vm-run-tooling-repo.log"
    monkeypatch.setattr(client_workspace, "tooling_log", lambda name: str(log))
    bin_dir = tmp_path / "bin"
    write(bin_dir / "mise", "#!/bin/sh\necho \"mise $*\"\n", 0o755)
    write(repo / ".mise.toml", "[tools]\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    result = prepare(repo, guest / "repo", bootstrap_tooling=True)
    assert result.tooling == str(log)
    for _ in range(100):
        if log.exists() and "install" in log.read_text():
            break
        subprocess.run(["sleep", "0.05"], check=True)
    assert log.read_text() == "mise install\n"


def test_tooling_bootstrap_without_mise_changes_nothing(
    repo: Path, guest: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write(repo / ".tool-versions", "python 3.11\n")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    no_mise = ":".join(p for p in os.environ["PATH"].split(":")
                       if not (Path(p) / "mise").exists())
    monkeypatch.setenv("PATH", no_mise)
    result = prepare(repo, guest / "repo", bootstrap_tooling=True)
    assert result.tooling == "no-mise"
    result = prepare(repo, guest / "quiet")
    assert result.tooling == ""


def test_a_guest_that_cannot_be_reached_is_a_clear_error(repo: Path) -> None:
    def unreachable(script: str) -> list[str]:
        return ["sh", "-c", "cat >/dev/null; echo 'ssh: connect to host: No route' >&2; exit 255"]

    with pytest.raises(HostError, match="could not reach local over ssh: ssh: connect"):
        copy_repo(unreachable, find_repo(repo), vm="local", dest="/root/repo")


# export


def guest_edits(copy: Path) -> None:
    """Modify, add (tracked and untracked), delete, rename, chmod, binary, symlink."""
    write(copy / "src/app.py", "print('v3, from the guest')\n")
    write(copy / "added-untracked.txt", "new in the guest\n")
    write(copy / "added-staged.txt", "staged in the guest\n")
    git(copy, "add", "added-staged.txt")
    (copy / "with space.txt").unlink()
    git(copy, "mv", NEWLINE_NAME, "renamed.txt")
    (copy / "run.sh").chmod(0o644)
    (copy / "-dash.txt").chmod(0o755)
    write(copy / "binary.bin", bytes(reversed(range(256))) * 8)
    write(copy / "new.bin", os.urandom(4096))
    (copy / "link-to-app").unlink()
    (copy / "link-to-app").symlink_to("run.sh")


def host_clone_at(repo: Path, base: str, where: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(repo), str(where)], check=True)
    git(where, "checkout", "-q", base)
    return where


def guest_state(copy: Path) -> tuple[str, str, bytes]:
    gitdir = copy / ".git"
    return (git(copy, "rev-parse", "HEAD"), status(copy), (gitdir / "index").read_bytes())


def test_export_diff_applies_on_a_clean_clone_at_base(
    repo: Path, guest: Path, tmp_path: Path
) -> None:
    base = git(repo, "rev-parse", "HEAD").strip()
    prepare(repo, guest / "repo")
    copy = guest / "repo"
    guest_edits(copy)
    before = guest_state(copy)
    objects_before = sorted(p.name for p in (copy / ".git/objects").rglob("*"))

    exported = export_from_guest(shell_command, vm="local", dest=str(copy), base=base)

    assert exported.header.format == "diff"
    assert exported.header.base == base
    assert "git apply" in exported.description
    assert b"GIT binary patch" in exported.patch
    assert b"rename from" in exported.patch
    # The guest's repository was only read.
    assert guest_state(copy) == before
    assert sorted(p.name for p in (copy / ".git/objects").rglob("*")) == objects_before

    patch = tmp_path / "ws.patch"
    patch.write_bytes(exported.patch)
    clone = host_clone_at(repo, base, tmp_path / "clone")
    git(clone, "apply", "--check", str(patch))
    git(clone, "apply", str(patch))
    assert tree_of_working_state(clone, tmp_path / "i1") == tree_of_working_state(
        copy, tmp_path / "i2"
    )


def test_export_with_guest_commits_is_a_series_for_git_am(
    repo: Path, guest: Path, tmp_path: Path
) -> None:
    base = git(repo, "rev-parse", "HEAD").strip()
    prepare(repo, guest / "repo")
    copy = guest / "repo"
    git(copy, "add", "-A")
    git(copy, "commit", "-qm", "guest: take the uncommitted host edits")
    guest_edits(copy)
    git(copy, "add", "-A")
    git(copy, "commit", "-qm", "guest: second commit")
    write(copy / "wip.txt", "not committed yet\n")
    write(copy / "src/app.py", "print('v4, uncommitted in the guest')\n")
    before = guest_state(copy)
    log_before = git(copy, "log", "--format=%H %s")

    exported = export_from_guest(shell_command, vm="local", dest=str(copy), base=base)

    assert exported.header.format == "mbox"
    assert (exported.header.commits, exported.header.wip) == (2, True)
    assert "git am" in exported.description and "3 patches" in exported.description
    assert guest_state(copy) == before
    assert git(copy, "log", "--format=%H %s") == log_before

    patch = tmp_path / "ws.mbox"
    patch.write_bytes(exported.patch)
    clone = host_clone_at(repo, base, tmp_path / "clone")
    git(clone, "am", "-q", str(patch))
    subjects = git(clone, "log", "--format=%s", f"{base}..HEAD").splitlines()
    assert subjects == [
        f"Uncommitted changes in {copy} (exported by banger)",
        "guest: second commit",
        "guest: take the uncommitted host edits",
    ]
    assert tree_of_working_state(clone, tmp_path / "i1") == tree_of_working_state(
        copy, tmp_path / "i2"
    )


def test_export_of_committed_work_only_has_no_wip_patch(repo: Path, guest: Path) -> None:
    base = git(repo, "rev-parse", "HEAD").strip()
    prepare(repo, guest / "repo")
    copy = guest / "repo"
    git(copy, "add", "-A")
    git(copy, "commit", "-qm", "everything")
    exported = export_from_guest(shell_command, vm="local", dest=str(copy), base=base)
    assert (exported.header.format, exported.header.commits, exported.header.wip) == (
        "mbox", 1, False
    )


def test_export_falls_back_to_a_diff_when_history_diverged(
    repo: Path, guest: Path, tmp_path: Path
) -> None:
    base = git(repo, "rev-parse", "HEAD").strip()
    prepare(repo, guest / "repo")
    copy = guest / "repo"
    git(copy, "checkout", "-q", "--orphan", "fresh")
    git(copy, "commit", "-qm", "unrelated history")
    exported = export_from_guest(shell_command, vm="local", dest=str(copy), base=base)
    assert (exported.header.format, exported.header.note) == ("diff", "diverged")
    assert "folded into this diff" in exported.description
    patch = tmp_path / "ws.patch"
    patch.write_bytes(exported.patch)
    clone = host_clone_at(repo, base, tmp_path / "clone")
    git(clone, "apply", str(patch))
    assert tree_of_working_state(clone, tmp_path / "i1") == tree_of_working_state(
        copy, tmp_path / "i2"
    )


def test_export_without_changes_is_empty(repo: Path, guest: Path) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "clean")
    base = git(repo, "rev-parse", "HEAD").strip()
    prepare(repo, guest / "repo")
    exported = export_from_guest(shell_command, vm="local", dest=str(guest / "repo"), base=base)
    assert exported.patch == b""
    assert exported.description.startswith("no changes")


def test_export_of_a_repository_without_commits(tmp_path: Path, guest: Path) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    git(root, "init", "-q")
    write(root / "a.txt", "a\n")
    result = prepare(root, guest / "repo")
    assert result.workspace.base_commit == ""
    write(guest / "repo/b.txt", "b\n")
    exported = export_from_guest(shell_command, vm="local", dest=str(guest / "repo"), base="")
    assert exported.header.format == "diff"
    assert b"+++ b/a.txt" in exported.patch and b"+++ b/b.txt" in exported.patch


def test_export_errors_are_typed(repo: Path, guest: Path) -> None:
    with pytest.raises(NotFound, match="does not exist in the guest"):
        export_from_guest(shell_command, vm="local", dest=str(guest / "nothing"), base="")
    (guest / "plain").mkdir()
    with pytest.raises(NotFound, match="is not a git repository"):
        export_from_guest(shell_command, vm="local", dest=str(guest / "plain"), base="")
    prepare(repo, guest / "repo")
    with pytest.raises(NotFound, match=r"base commit 0{40} is not in"):
        export_from_guest(shell_command, vm="local", dest=str(guest / "repo"), base="0" * 40)


def test_a_file_tar_cannot_read_is_a_warning_not_a_failure(
    repo: Path, guest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import banger.client.workspace as client_workspace

    real = client_workspace.list_files

    def with_a_vanished_file(root: Path) -> FileList:
        found = real(root)
        found.paths.append("vanished-meanwhile.txt")
        return found

    monkeypatch.setattr(client_workspace, "list_files", with_a_vanished_file)
    events: list[ProgressEvent] = []
    prepare(repo, guest / "repo", on_progress=events.append)
    [warning] = [e for e in events if e.stage == "warning"]
    assert "vanished-meanwhile.txt" in warning.message
    assert status(guest / "repo") == status(repo)


def test_a_bare_repository_is_not_a_workspace(repo: Path, tmp_path: Path) -> None:
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(tmp_path / "bare.git")],
                   check=True)
    with pytest.raises(InvalidInput, match="has no working tree"):
        find_repo(tmp_path / "bare.git")
    with pytest.raises(InvalidInput, match="has no working tree"):
        find_repo(repo / ".git")


def test_the_two_halves_copy_like_the_one_stream(tmp_path: Path) -> None:
    """Through the agent the copy goes apart from the script: reserve a directory, unpack
    the tar there, finish; the result is prepare_script's."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "f.txt").write_text("hi\n")
    subprocess.run(["git", "init", "-q", str(source)], check=True)
    dest = str(tmp_path / "guest" / "repo")
    reserved = reserved_dir(dest, subprocess.run(
        ["sh", "-c", reserve_script(dest)], capture_output=True, check=True).stdout)
    subprocess.run(f"tar -C {shlex.quote(str(source))} -c -f - . | "
                   f"tar -x -f - -C {shlex.quote(reserved)}", shell=True, check=True)
    out = subprocess.run(["sh", "-c", finish_script(dest, reserved)], capture_output=True,
                         check=True).stdout
    assert parse_prepare_output(out).head == ""
    assert (Path(dest) / "f.txt").read_text() == "hi\n"
    assert not Path(reserved).exists()
    with pytest.raises(InvalidInput, match="unexpected directory"):
        reserved_dir(dest, b"/etc\n")
    with pytest.raises(InvalidInput, match="unexpected directory"):
        reserved_dir(dest, (str(tmp_path / "guest" / ".banger-workspace.x") + "/../y").encode())


class LocalAgent:
    """A Client whose guest agent is this host: scripts run here, tar streams unpack here
    as the agent unpacks them (`tar -x -o`)."""

    def __init__(self, fail_upload: bool = False) -> None:
        self.fail_upload = fail_upload

    def exec_vm(self, vm: str, argv: list[str], *, on_stdout: Any, on_stderr: Any,
                ) -> dict[str, Any]:
        proc = subprocess.run(argv, capture_output=True, check=False)
        on_stdout(proc.stdout)
        on_stderr(proc.stderr)
        return {"exit_code": proc.returncode, "signal": None, "timed_out": False}

    def upload_tar(self, vm: str, guest_dir: str, chunks: Any) -> None:
        if self.fail_upload:
            raise GuestFileFailed("the guest's disk is full")
        data = b"".join(chunks)
        subprocess.run(["tar", "-x", "-o", "-f", "-", "-C", guest_dir], input=data, check=True)


def tree(root: Path) -> list[tuple[str, int, str | bytes]]:
    """Each path under `root` outside .git: its mode, and its content or link target."""
    return sorted(
        (str(p.relative_to(root)), p.lstat().st_mode,
         os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else b"")
        for p in root.rglob("*") if p.relative_to(root).parts[0] != ".git"
    )


def test_the_copy_through_the_agent_is_the_copy_over_ssh(repo: Path, guest: Path) -> None:
    over_ssh = prepare(repo, guest / "ssh", branch="feat")
    agent: Any = LocalAgent()
    through_agent, _ = copy_repo(agent, find_repo(repo), vm="local", dest=str(guest / "agent"),
                                 branch="feat")
    assert through_agent.workspace.base_commit == over_ssh.workspace.base_commit
    assert tree(guest / "agent") == tree(guest / "ssh")
    assert git(guest / "agent", "branch", "--show-current").strip() == "feat"
    assert sorted(p.name for p in guest.iterdir()) == ["agent", "ssh"]  # nothing reserved left
    with pytest.raises(Conflict, match="already exists"):
        copy_repo(agent, find_repo(repo), vm="local", dest=str(guest / "agent"))


def test_a_copy_through_the_agent_that_fails_leaves_nothing(repo: Path, guest: Path) -> None:
    agent: Any = LocalAgent(fail_upload=True)
    with pytest.raises(GuestFileFailed, match="disk is full"):
        copy_repo(agent, find_repo(repo), vm="local", dest=str(guest / "repo"))
    assert list(guest.iterdir()) == []
