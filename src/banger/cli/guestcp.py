"""`banger vm cp`: files and directories into or out of a running VM through banger's guest
agent, like `docker cp` (a directory copied onto an existing directory goes inside it)."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from banger.cli.context import Context
from banger.cli.spec import Arg, Command, echo
from banger.core.errors import GuestPathNotFound, InvalidInput

# How many skipped entries a warning names.
_NAMED = 5


def copy(ctx: Context, src: str, dst: str) -> None:
    """Copy a file or a directory into or out of a running VM through banger's guest agent,
    one side written NAME:PATH (an absolute guest path). Onto an existing directory, SRC
    goes inside it; a directory comes out without devices, FIFOs or symlinks that point
    outside it.

      banger vm cp ./build.sh dev:/root/
      banger vm cp ./repo dev:/root/          (makes /root/repo)
      banger vm cp dev:/var/log ./guest-logs"""
    from_guest, to_guest = guest_side(src), guest_side(dst)
    if (from_guest is None) == (to_guest is None):
        raise InvalidInput("give exactly one side as NAME:PATH",
                           hint="banger vm cp FILE NAME:/PATH, or banger vm cp NAME:/PATH FILE")
    if to_guest is not None:
        _to_guest(ctx, Path(src), *to_guest)
    else:
        assert from_guest is not None
        _from_guest(ctx, *from_guest, Path(dst))


def guest_side(arg: str) -> tuple[str, str] | None:
    """(NAME, PATH) of `NAME:PATH`; None for a local path (which may hold a colon only
    after a slash, as in ./a:b)."""
    name, sep, path = arg.partition(":")
    if not sep or not name or "/" in name:
        return None
    return name, path


def _to_guest(ctx: Context, src: Path, name: str, guest_path: str) -> None:
    from banger.client.dirtar import pack

    try:
        is_dir = src.is_dir()
        if not is_dir:
            with open(src, "rb") as f:
                data = f.read()
                mode = os.fstat(f.fileno()).st_mode & 0o7777
    except OSError as exc:
        raise InvalidInput(f"cannot read {src}: {exc.strerror}") from None
    base = src.resolve().name if is_dir else src.name
    if guest_path.endswith("/"):
        target = guest_path + base
    else:
        target = guest_path
        try:
            existing = ctx.client.stat_file(name, guest_path)
        except GuestPathNotFound:
            existing = None
        if existing is not None and existing.type == "dir":
            target = posixpath.join(guest_path, base)
        elif existing is not None and is_dir:
            raise InvalidInput(f"cannot copy directory {src} onto {name}:{guest_path}, "
                               f"a {existing.type}")
    if is_dir:
        ctx.client.upload_tar(name, target, pack(src))
    else:
        ctx.client.write_file(name, target, data, mode)


def _from_guest(ctx: Context, name: str, guest_path: str, dst: Path) -> None:
    from banger.client.dirtar import unpack

    entry = ctx.client.stat_file(name, guest_path)
    base = posixpath.basename(guest_path.rstrip("/"))
    target = dst / base if dst.is_dir() and base else dst
    if entry.type == "dir":
        if target.exists() and not target.is_dir():
            raise InvalidInput(f"cannot copy directory {name}:{guest_path} onto {target}, "
                               "not a directory")
        skipped = unpack(ctx.client.download_tar(name, guest_path), target).skipped
        if skipped:
            more = f" and {len(skipped) - _NAMED} more" if len(skipped) > _NAMED else ""
            echo(f"warning: left out {len(skipped)} entries that are not plain files, "
                 f"directories or links inside it: {', '.join(skipped[:_NAMED])}{more}",
                 err=True)
        return
    data = ctx.client.read_file(name, guest_path)
    try:
        with open(target, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise InvalidInput(f"cannot write {target}: {exc.strerror}") from None


cp_command = Command("cp", copy, [Arg("src"), Arg("dst")])
