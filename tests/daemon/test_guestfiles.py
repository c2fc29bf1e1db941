"""The guest file routes (list, stat, mkdir, remove, rename, tar) through the real client, to
the real agent run on this host (tests/support/perlagent.py) standing in for the guest's:
its "guest paths" are this test's own directories."""

from __future__ import annotations

import asyncio
import io
import os
import pwd
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from banger.core.errors import GuestFileFailed, GuestPathNotFound, InvalidInput
from tests.support.api import Api, serve_with_agent


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serve_with_agent(tmp_path) as served:
        yield served


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"hello")
    (root / "a.txt").chmod(0o640)
    (root / "sub" / "b.bin").write_bytes(b"\0" * 70_000)
    (root / "sub" / "deeper" / "c").write_bytes(b"c")
    (root / "link").symlink_to("sub/b.bin")
    return root


async def test_list_with_depth_and_stat(api: Api, tree: Path) -> None:
    top = await api.call(api.client.list_files, "dev", str(tree))
    assert sorted(e.name for e in top) == ["a.txt", "link", "sub"]
    by_name = {e.name: e for e in top}
    a = by_name["a.txt"]
    assert (a.path, a.type, a.size, a.mode, a.uid) == (str(tree / "a.txt"), "file", 5, 0o640,
                                                       os.getuid())
    assert a.owner == pwd.getpwuid(os.getuid()).pw_name
    assert a.mtime == int((tree / "a.txt").stat().st_mtime)
    assert (by_name["link"].type, by_name["link"].target) == ("symlink", "sub/b.bin")
    assert (by_name["sub"].type, by_name["sub"].target) == ("dir", None)
    deep = await api.call(api.client.list_files, "dev", str(tree) + "/", 3)
    assert sorted(os.path.relpath(e.path, tree) for e in deep) == [
        "a.txt", "link", "sub", "sub/b.bin", "sub/deeper", "sub/deeper/c",
    ]
    link = await api.call(api.client.stat_file, "dev", str(tree / "link"))
    assert (link.name, link.type, link.target) == ("link", "symlink", "sub/b.bin")


async def test_a_listing_larger_than_a_frame_comes_whole(api: Api, tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    for n in range(1500):  # ~100 KiB of entries: several ENTRIES frames
        (big / f"file-with-a-long-name-{n:05}").touch()
    entries = await api.call(api.client.list_files, "dev", str(big))
    assert sorted(e.name for e in entries) == sorted(p.name for p in big.iterdir())


async def test_mkdir_rename_and_remove(api: Api, tmp_path: Path) -> None:
    made = await api.call(api.client.make_dir, "dev", str(tmp_path / "x" / "y" / "z"), 0o700)
    assert (made.type, made.mode) == ("dir", 0o700)
    again = await api.call(api.client.make_dir, "dev", str(tmp_path / "x" / "y" / "z"))
    assert again.mode == 0o700  # an existing directory is left as it is
    (tmp_path / "x" / "y" / "z" / "f").write_text("f")
    moved = await api.call(api.client.rename_file, "dev", str(tmp_path / "x"),
                           str(tmp_path / "moved"))
    assert (moved.name, moved.type) == ("moved", "dir")
    with pytest.raises(GuestFileFailed, match=r"cannot remove .*moved: Directory not empty"):
        await api.call(api.client.remove_file, "dev", str(tmp_path / "moved"))
    await api.call(api.client.remove_file, "dev", str(tmp_path / "moved"), True)
    assert not (tmp_path / "moved").exists()
    (tmp_path / "file").touch()
    await api.call(api.client.remove_file, "dev", str(tmp_path / "file"))
    assert not (tmp_path / "file").exists()


async def test_errors_name_the_path(api: Api, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    with pytest.raises(GuestPathNotFound, match=f"cannot list {missing}: No such file"):
        await api.call(api.client.list_files, "dev", missing)
    with pytest.raises(GuestPathNotFound, match=f"cannot stat {missing}: No such file"):
        await api.call(api.client.stat_file, "dev", missing)
    with pytest.raises(GuestPathNotFound, match=f"cannot remove {missing}"):
        await api.call(api.client.remove_file, "dev", missing, True)
    with pytest.raises(GuestPathNotFound, match=f"cannot rename {missing} to"):
        await api.call(api.client.rename_file, "dev", missing, missing + "2")
    (tmp_path / "file").touch()
    with pytest.raises(GuestFileFailed, match="Not a directory"):
        await api.call(api.client.list_files, "dev", str(tmp_path / "file"))
    with pytest.raises(GuestFileFailed, match=r"cannot make .*file: File exists"):
        await api.call(api.client.make_dir, "dev", str(tmp_path / "file" / "sub"))
    with pytest.raises(InvalidInput, match="absolute"):
        await api.call(api.client.stat_file, "dev", "relative")
    with pytest.raises(InvalidInput, match="refusing to remove"):
        await api.call(api.client.remove_file, "dev", "/", True)
    with pytest.raises(InvalidInput, match="depth"):
        await api.call(api.client.list_files, "dev", str(tmp_path), 0)


@pytest.mark.skipif(os.getuid() != 0, reason="chown needs root")
async def test_write_with_an_owner(api: Api, tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    await api.call(api.client.write_file, "dev", str(tmp_path / "f"), b"x", 0o600, "nobody")
    st = (tmp_path / "f").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (nobody.pw_uid, nobody.pw_gid, 0o600)
    await api.call(api.client.write_file, "dev", str(tmp_path / "g"), b"x", 0o644, "nobody:0")
    assert (tmp_path / "g").stat().st_gid == 0
    with pytest.raises(GuestFileFailed, match="no user no-such-user in the guest"):
        await api.call(api.client.write_file, "dev", str(tmp_path / "h"), b"x", 0o644,
                       "no-such-user")
    assert not (tmp_path / "h").exists()


def _tar_of(root: Path) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        tar.add(root, arcname=".")
    return out.getvalue()


async def test_directories_as_tar_both_ways(api: Api, tree: Path, tmp_path: Path) -> None:
    (tree / "empty").mkdir()
    chunks = await api.call(lambda: list(api.client.download_tar("dev", str(tree))))
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        names = sorted(m.name for m in tar.getmembers())
    assert "./sub/deeper/c" in names and "./empty" in names and "./link" in names
    data = _tar_of(tree)
    target = tmp_path / "up" / "here"
    await api.call(api.client.upload_tar, "dev", str(target),
                   (data[at:at + 10_000] for at in range(0, len(data), 10_000)))
    assert (target / "sub" / "b.bin").read_bytes() == b"\0" * 70_000
    assert os.readlink(target / "link") == "sub/b.bin"
    assert (target / "a.txt").stat().st_mode & 0o777 == 0o640
    assert (target / "empty").is_dir()


async def test_tar_errors(api: Api, tmp_path: Path) -> None:
    with pytest.raises(GuestPathNotFound, match="missing"):
        await api.call(lambda: list(api.client.download_tar("dev", str(tmp_path / "missing"))))
    with pytest.raises(GuestFileFailed, match="cannot unpack into"):
        await api.call(api.client.upload_tar, "dev", str(tmp_path / "t"), [b"not a tar" * 200])



def _untars_in(directory: Path) -> list[int]:
    """The pids of the agent's `tar -x` processes working in `directory`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if ((proc / "cmdline").read_bytes() == b"tar\0-x\0-o\0-f\0-\0"
                    and os.readlink(proc / "cwd") == str(directory)):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


async def test_an_upload_broken_off_kills_the_guest_tar(api: Api, tree: Path,
                                                        tmp_path: Path) -> None:
    target = tmp_path / "up"
    data = _tar_of(tree)
    seen: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        yield data[:3000]
        for _ in range(100):
            seen.extend(_untars_in(target))
            if seen:
                break
            await asyncio.sleep(0.05)
        raise ConnectionAbortedError("the client goes away")

    async with api.session() as session:
        with pytest.raises(aiohttp.ClientError):
            await session.put(f"http://bangerd/v1/vms/dev/files/tar?path={target}", data=body())
    for _ in range(100):
        if not _untars_in(target):
            break
        await asyncio.sleep(0.05)
    assert seen and _untars_in(target) == []
    assert await api.call(api.client.stat_file, "dev", str(target))  # the channel still serves
