"""`vm cp` directories on the client's side: `pack` and `unpack` round trip, and hostile
tars from a guest that try to write outside the destination."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from banger.client.dirtar import pack, unpack
from banger.core.errors import UnsafeGuestTar
from banger.core.tarlimits import MAX_EXTENDED_HEADER


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> list[bytes]:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    data = out.getvalue()
    return [data[at:at + 1000] for at in range(0, len(data), 1000)]  # in pieces, as sent


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "",
            mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    return info


def test_pack_and_unpack_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub" / "empty").mkdir(parents=True)
    (src / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    (src / "sub" / "run.sh").write_text("#!/bin/sh\n")
    (src / "sub" / "run.sh").chmod(0o750)
    (src / "sub" / "ro").mkdir()
    (src / "sub" / "ro" / "f").write_text("f")
    (src / "sub" / "ro").chmod(0o555)
    (src / "link").symlink_to("sub/run.sh")
    os.mkfifo(src / "fifo")  # not packed
    unpacked = unpack(pack(src), tmp_path / "dst")
    assert unpacked.skipped == []
    dst = tmp_path / "dst"
    assert (dst / "big.bin").read_bytes() == (src / "big.bin").read_bytes()
    assert stat.S_IMODE((dst / "sub" / "run.sh").stat().st_mode) == 0o750
    assert stat.S_IMODE((dst / "sub" / "ro").stat().st_mode) == 0o555
    assert (dst / "sub" / "ro" / "f").read_text() == "f"
    assert os.readlink(dst / "link") == "sub/run.sh"
    assert (dst / "sub" / "empty").is_dir()
    assert not (dst / "fifo").exists()
    (src / "sub" / "ro").chmod(0o755)
    (dst / "sub" / "ro").chmod(0o755)


@pytest.mark.parametrize(("name", "why"), [
    ("/etc/evil", "absolute path"),
    ("../evil", "climbs out"),
    ("a/../../evil", "climbs out"),
])
def test_paths_outside_the_destination_are_refused(tmp_path: Path, name: str, why: str) -> None:
    with pytest.raises(UnsafeGuestTar, match=why):
        unpack(_tar((_member(name), b"x")), tmp_path / "dst")
    assert not (tmp_path / "evil").exists()


def test_no_member_is_written_through_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    chunks = _tar((_member("sub", tarfile.DIRTYPE, mode=0o755), b""),
                  (_member("in", tarfile.SYMTYPE, "sub"), b""),
                  (_member("in/x"), b"x"))
    with pytest.raises(UnsafeGuestTar, match="writes through 'in'"):
        unpack(chunks, tmp_path / "dst")
    assert not (tmp_path / "dst" / "sub" / "x").exists()


def test_escaping_symlinks_and_special_files_are_skipped(tmp_path: Path) -> None:
    chunks = _tar((_member("abs", tarfile.SYMTYPE, "/etc/passwd"), b""),
                  (_member("up", tarfile.SYMTYPE, "../outside"), b""),
                  (_member("d/up", tarfile.SYMTYPE, "../../x"), b""),
                  (_member("d/ok", tarfile.SYMTYPE, "../abs-target"), b""),
                  (_member("dev", tarfile.CHRTYPE), b""),
                  (_member("fifo", tarfile.FIFOTYPE), b""),
                  (_member("abs/x"), b"x"))  # a directory of its own: abs was skipped
    unpacked = unpack(chunks, tmp_path / "dst")
    assert unpacked.skipped == ["abs -> /etc/passwd", "up -> ../outside", "d/up -> ../../x",
                                "dev", "fifo"]
    dst = tmp_path / "dst"
    assert os.readlink(dst / "d" / "ok") == "../abs-target"
    assert (dst / "abs" / "x").read_text() == "x"
    assert sorted(p.name for p in dst.iterdir()) == ["abs", "d"]


def test_hard_links_only_to_files_of_the_archive(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("secret")
    with pytest.raises(UnsafeGuestTar, match="absolute path"):
        unpack(_tar((_member("h", tarfile.LNKTYPE, str(secret)), b"")), tmp_path / "a")
    with pytest.raises(UnsafeGuestTar, match="not a file it holds"):
        unpack(_tar((_member("h", tarfile.LNKTYPE, "nothing"), b"")), tmp_path / "b")
    unpack(_tar((_member("f"), b"data"), (_member("d/h", tarfile.LNKTYPE, "f"), b"")),
           tmp_path / "c")
    assert (tmp_path / "c" / "d" / "h").read_text() == "data"
    assert (tmp_path / "c" / "f").stat().st_nlink == 2


def test_an_old_symlink_in_the_destination_is_replaced_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("keep")
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "f").symlink_to(target)
    unpack(_tar((_member("f"), b"new")), dst)
    assert (target.read_text(), (dst / "f").read_text()) == ("keep", "new")
    assert not (dst / "f").is_symlink()


def test_set_id_bits_are_dropped(tmp_path: Path) -> None:
    unpack(_tar((_member("suid", mode=0o4755), b"x")), tmp_path / "dst")
    assert stat.S_IMODE((tmp_path / "dst" / "suid").stat().st_mode) == 0o755


def test_broken_and_oversized_tars(tmp_path: Path) -> None:
    whole = b"".join(_tar((_member("f"), b"x" * 5000)))
    with pytest.raises(UnsafeGuestTar, match="broken"):
        unpack([whole[:2000]], tmp_path / "a")
    huge = _member("f")
    huge.pax_headers = {"comment": "x" * (MAX_EXTENDED_HEADER + 1)}
    with pytest.raises(UnsafeGuestTar, match="extended tar headers"):
        unpack(_tar((huge, b"x")), tmp_path / "b")
