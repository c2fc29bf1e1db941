"""Guest files end to end, through banger-agent in a cold-booted guest: listings, stat,
mkdir -p, rename, remove -r and owners through the client, and `banger vm cp` of a
directory there and back."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from banger.client import Client
from banger.core.errors import GuestPathNotFound
from tests.e2e.conftest import BangerEnv

pytestmark = pytest.mark.e2e
VM = "fs"


@pytest.fixture(scope="module")
def vm(banger: BangerEnv) -> Iterator[str]:
    with banger.vm(VM) as name:
        yield name


@pytest.fixture
def client(banger: BangerEnv, vm: str) -> Client:
    # The daemon's socket is a file: reachable from outside the test namespace.
    return Client(env=banger.env, autostart=False)


def test_mkdir_list_stat_rename_remove(client: Client, vm: str) -> None:
    made = client.make_dir(vm, "/root/t/a/b", 0o700)
    assert (made.path, made.type, made.mode, made.owner) == ("/root/t/a/b", "dir", 0o700, "root")
    client.write_file(vm, "/root/t/a/f.txt", b"hello", 0o640)
    assert sorted(e.path for e in client.list_files(vm, "/root/t")) == ["/root/t/a"]
    deep = {e.path: e for e in client.list_files(vm, "/root/t", depth=3)}
    assert sorted(deep) == ["/root/t/a", "/root/t/a/b", "/root/t/a/f.txt"]
    assert (deep["/root/t/a/f.txt"].size, deep["/root/t/a/f.txt"].mode) == (5, 0o640)
    stat = client.stat_file(vm, "/etc/os-release")
    assert (stat.type, stat.target) == ("symlink", "../usr/lib/os-release")
    moved = client.rename_file(vm, "/root/t/a", "/root/t/moved")
    assert (moved.name, moved.type) == ("moved", "dir")
    assert client.read_file(vm, "/root/t/moved/f.txt") == b"hello"
    client.remove_file(vm, "/root/t", recursive=True)
    with pytest.raises(GuestPathNotFound, match="cannot stat /root/t: No such file"):
        client.stat_file(vm, "/root/t")


def test_write_with_an_owner(client: Client, vm: str) -> None:
    client.write_file(vm, "/tmp/owned", b"x", 0o600, owner="nobody")
    entry = client.stat_file(vm, "/tmp/owned")
    assert (entry.owner, entry.group, entry.mode) == ("nobody", "nogroup", 0o600)


def test_a_missing_path_is_one_line_naming_it(banger: BangerEnv, vm: str, tmp_path: Path) -> None:
    proc = banger.run("vm", "cp", f"{vm}:/no/such/dir", str(tmp_path / "x"), check=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == (
        "error: cannot stat /no/such/dir: No such file or directory"
    )


def test_cp_of_a_directory_there_and_back(banger: BangerEnv, vm: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub" / "empty").mkdir(parents=True)
    (src / "data.bin").write_bytes(os.urandom(3_000_000))
    (src / "sub" / "script.sh").write_text("#!/bin/sh\necho hi\n")
    (src / "sub" / "script.sh").chmod(0o755)
    (src / "link").symlink_to("sub/script.sh")
    banger.run("vm", "cp", str(src), f"{vm}:/root/")  # into an existing directory
    listed = banger.run("vm", "exec", vm, "--", "sh", "-c",
                        "cd /root/src && find . | sort && readlink link").stdout
    assert listed.split() == [".", "./data.bin", "./link", "./sub", "./sub/empty",
                              "./sub/script.sh", "sub/script.sh"]
    back = tmp_path / "back"
    banger.run("vm", "cp", f"{vm}:/root/src", str(back))  # to a new name
    assert _tree(back) == _tree(src)
    banger.run("vm", "exec", vm, "--", "rm", "-r", "/root/src")


def _tree(root: Path) -> dict[str, tuple[str, int, bytes | str | None]]:
    found: dict[str, tuple[str, int, bytes | str | None]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = ("symlink", 0, os.readlink(path))
            elif path.is_dir():
                found[rel] = ("dir", st.st_mode & 0o777, None)
            else:
                found[rel] = ("file", st.st_mode & 0o777, path.read_bytes())
    return found
