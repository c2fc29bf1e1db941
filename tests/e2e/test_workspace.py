"""Workspaces on real guests: `vm run ./repo`, export and apply on the host, a read-only
prepare, file_sync, and growing the work disk with `vm set`. Two VMs in all."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import BangerEnv

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Host", "GIT_AUTHOR_EMAIL": "host@example.test",
    "GIT_COMMITTER_NAME": "Host", "GIT_COMMITTER_EMAIL": "host@example.test",
}
# The guest's working state as a tree id, through a scratch index (the real one untouched).
GUEST_TREE = (
    "cd /root/repo && GIT_INDEX_FILE=/tmp/tree-index git add -A && "
    "GIT_INDEX_FILE=/tmp/tree-index git write-tree && rm -f /tmp/tree-index"
)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
        env={**os.environ, **GIT_ENV},
    ).stdout


def host_tree(repo: Path) -> str:
    env = {**os.environ, **GIT_ENV, "GIT_INDEX_FILE": str(repo.parent / "tree-index")}
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=env)
    tree = subprocess.run(["git", "-C", str(repo), "write-tree"], check=True, env=env,
                          capture_output=True, text=True).stdout.strip()
    os.unlink(env["GIT_INDEX_FILE"])
    return tree


def write(path: Path, text: str, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)


@pytest.fixture
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("ws")


@pytest.fixture
def repo(workdir: Path) -> Path:
    root = workdir / "app"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write(root / ".gitignore", "*.log\nbuild/\n")
    write(root / "src/app.py", "print('v1')\n")
    write(root / "run.sh", "#!/bin/sh\necho ran\n", 0o755)
    write(root / "old name.txt", "to be renamed in the guest\n")
    write(root / "doomed.txt", "to be deleted in the guest\n")
    (root / "link").symlink_to("src/app.py")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "initial")
    write(root / "src/app.py", "print('v2, uncommitted on the host')\n")
    write(root / "untracked.txt", "untracked, not ignored\n")
    write(root / "debug.log", "ignored\n")
    write(root / "build/out.o", "ignored directory\n")
    return root


def test_run_export_apply_and_readonly_prepare(
    banger: BangerEnv, repo: Path, workdir: Path
) -> None:
    base = git(repo, "rev-parse", "HEAD").strip()
    checks = (
        "pwd; cat src/app.py; cat untracked.txt; ./run.sh; "
        "test ! -e debug.log && test ! -e build && echo no-ignored; "
        "stat -c '%U %a' . src/app.py run.sh; readlink link; "
        "git status --porcelain > /tmp/status; exit 7"
    )
    proc = banger.run("vm", "run", str(repo), "--name", "ws", "--", "sh", "-c", checks,
                      check=False)
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout.splitlines() == [
        "/root/repo", "print('v2, uncommitted on the host')", "untracked, not ignored",
        "ran", "no-ignored", "root 755", "root 644", "root 755", "src/app.py",
    ]
    assert "spec:" in proc.stderr and "copying" in proc.stderr
    # The copy and the command went through the guest agent: no ssh login yet.
    logins = banger.run("vm", "exec", "ws", "--", "sh", "-c",
                        "journalctl -o cat | grep -c 'Accepted publickey' || true").stdout
    assert logins.strip() == "0"
    guest_status = banger.run("vm", "ssh", "ws", "--", "cat", "/tmp/status").stdout
    assert guest_status == git(repo, "status", "--porcelain")
    shown = banger.json("vm", "workspace", "show", "ws")
    assert [(w["guest_path"], w["base_commit"]) for w in shown] == [("/root/repo", base)]

    # Edit, add, delete, rename, chmod and a binary file in the guest: one diff.
    banger.run("vm", "ssh", "ws", "--", "sh", "-c",
               "cd /root/repo && echo \"print('v3, guest')\" > src/app.py && "
               "echo new > added.txt && rm doomed.txt && git mv 'old name.txt' renamed.txt && "
               "chmod -x run.sh && head -c 65536 /dev/urandom > blob.bin")
    patch = workdir / "ws.patch"
    summary = banger.json("vm", "workspace", "export", "ws", "-o", str(patch))
    assert (summary["format"], summary["apply_with"], summary["base"]) == (
        "diff", "git apply", base
    )
    guest_tree = banger.run("vm", "ssh", "ws", "--", "sh", "-c", GUEST_TREE).stdout.strip()
    clone = workdir / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    git(clone, "checkout", "-q", base)
    git(clone, "apply", "--check", str(patch))
    git(clone, "apply", str(patch))
    assert host_tree(clone) == guest_tree

    # Commits in the guest (and more uncommitted work): a series for `git am`.
    banger.run("vm", "ssh", "ws", "--", "sh", "-c",
               "cd /root/repo && git add -A && "
               "git -c user.name=Guest -c user.email=g@example.test commit -qm 'guest work' && "
               "echo wip > wip.txt")
    head_before = banger.run("vm", "ssh", "ws", "--", "git", "-C", "/root/repo", "rev-parse",
                             "HEAD").stdout
    mbox = workdir / "ws.mbox"
    proc = banger.run("vm", "workspace", "export", "ws", "-o", str(mbox))
    assert "git format-patch series: 2 patches" in proc.stderr and "`git am`" in proc.stderr
    assert banger.run("vm", "ssh", "ws", "--", "git", "-C", "/root/repo", "rev-parse",
                      "HEAD").stdout == head_before
    guest_tree = banger.run("vm", "ssh", "ws", "--", "sh", "-c", GUEST_TREE).stdout.strip()
    fresh = workdir / "fresh"
    subprocess.run(["git", "clone", "-q", str(repo), str(fresh)], check=True)
    git(fresh, "checkout", "-q", base)
    git(fresh, "am", "-q", str(mbox))
    assert git(fresh, "log", "--format=%s", f"{base}..HEAD").splitlines()[1] == "guest work"
    assert host_tree(fresh) == guest_tree

    # A read-only copy next to it: git reads it, nobody (not even root) writes it.
    prepared = banger.json("vm", "workspace", "prepare", "ws", str(repo), "--guest-path",
                           "/root/ro", "--readonly")
    assert prepared["readonly"] == "immutable"
    touched = banger.run("vm", "ssh", "ws", "--", "touch", "/root/ro/new", check=False)
    assert touched.returncode != 0
    assert banger.run("vm", "ssh", "ws", "--", "git", "-C", "/root/ro", "status",
                      "--porcelain").stdout == git(repo, "status", "--porcelain")
    banger.run("vm", "delete", "--force", "ws")


def test_file_sync_interactive_workspace_and_growing_the_disk(
    second_banger: Callable[..., BangerEnv], repo: Path, workdir: Path
) -> None:
    secrets = workdir / "secrets"
    write(secrets / "token", "s3cret\n")
    write(secrets / "nested/deeper.txt", "deep\n")
    write(workdir / "tool", "#!/bin/sh\necho tool\n")
    write(repo / ".mise.toml", "[tools]\n")  # the test image has no mise: nothing may break
    env = second_banger(
        f'[[file_sync]]\nhost = "{secrets}"\nguest = "~/.secrets"\n'
        f'[[file_sync]]\nhost = "{workdir}/tool"\nguest = "/root/bin/tool"\nmode = "0755"\n'
        f'[[file_sync]]\nhost = "{workdir}/missing"\nguest = "~/missing"\n'
    )
    # No command and no TTY: the login shell in /root/repo reads its commands from stdin.
    proc = env.run("vm", "run", str(repo), "--name", "sync", input=(
        "pwd; cat ~/.secrets/token ~/.secrets/nested/deeper.txt; ~/bin/tool; "
        "stat -c '%a %n' ~/.secrets ~/.secrets/token ~/bin/tool; "
        "ls /root/.cache/banger 2>/dev/null | wc -l; exit 3\n"
    ), check=False)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.splitlines() == [
        "/root/repo", "s3cret", "deep", "tool",
        "700 /root/.secrets", "600 /root/.secrets/token", "755 /root/bin/tool", "0",
    ]
    assert f"warning: file_sync: {workdir}/missing does not exist on the host" in proc.stderr

    # vm set: refused while running, then grows the stopped VM's disk; the data stays.
    refused = env.run("vm", "set", "sync", "--disk-size", "12G", check=False)
    assert refused.returncode == 1 and "is running" in refused.stderr
    env.run("vm", "stop", "sync")
    shrink = env.run("vm", "set", "sync", "--disk-size", "4G", check=False)
    assert shrink.returncode == 1 and "shrinking" in shrink.stderr
    assert "12G disk" in env.run("vm", "set", "sync", "--disk-size", "12G").stdout
    env.run("vm", "start", "sync")
    size = int(env.run("vm", "ssh", "sync", "--", "df", "-B1", "--output=size", "/root")
               .stdout.split()[-1])
    assert 11 << 30 < size <= 12 << 30
    kept = env.run("vm", "ssh", "sync", "--", "sh", "-c",
                   "cat ~/.secrets/token; git -C /root/repo log --format=%s").stdout
    assert kept == "s3cret\ninitial\n"
    assert json.loads(env.run("vm", "show", "sync", "--json").stdout)["spec"][
        "disk_size_bytes"] == 12 << 30
    env.run("vm", "delete", "--force", "sync")
