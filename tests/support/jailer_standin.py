"""A stand-in for Firecracker's `jailer`, for machines without it. A test helper, not product
code.

It takes the jailer's command line and refuses what the jailer refuses (a missing or
malformed --id, --exec-file, --uid or --gid, an exec file whose name lacks "firecracker",
a relative chroot base, a cgroup version other than 1 or 2, a --cgroup that is not
FILE=VALUE, options it does not know), then does what the jailer does, in its order: makes
`<chroot base>/<exec file name>/<id>/root` and copies the exec file into it, makes the
cgroup `<parent cgroup>/<id>` (in each controller's hierarchy under v1, in the unified one
under v2), writes the values and moves itself there, joins --netns, enters a mount
namespace of its own, makes /dev/net/tun and /dev/kvm (where the host has it) in the jail
for the uid, gives the jail to the uid, chroots into it, drops to the uid and gid and
execs the copied binary with `--id=<id>`, the start-time options and what follows `--`,
with an empty environment. Its PID becomes Firecracker's.

One difference, so that the Firecracker stand-in (a Python program that boots the guest with
QEMU) can run in the jail at all: before it chroots, it bind-mounts the host's /usr (with
/bin, /lib... as the same symlinks), the repository this file is in, a few device nodes and
the host's TSC rate read-only into the jail and mounts a /proc there (the stand-in passes the
guest's RAM to QEMU as /proc/self/fd/N), inside its own mount namespace only. The real jailer
pivots into an empty root; the real Firecracker is one static binary.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import sys
import time
from pathlib import Path

CGROUPS = Path("/sys/fs/cgroup")
REPO = Path(__file__).resolve().parents[2]
_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
_CLONE_NEWNS = 0x00020000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_SYMLINKS = ("bin", "sbin", "lib", "lib64")
_DEVICES = ("null", "zero", "urandom", "random")
_VALUED = {"--id", "--exec-file", "--uid", "--gid", "--chroot-base-dir", "--netns",
           "--cgroup-version", "--cgroup", "--parent-cgroup", "--resource-limit"}
_FLAGS = {"--daemonize", "--new-pid-ns"}

_libc = ctypes.CDLL(None, use_errno=True)


class Refused(Exception):
    pass


def parse(argv: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """The options (each with its values, in order) and what follows `--`."""
    options: dict[str, list[str]] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest = argv[i + 1:]
            break
        if arg in _FLAGS:
            options.setdefault(arg, []).append("")
        elif arg in _VALUED:
            if i + 1 >= len(argv):
                raise Refused(f"option {arg} needs a value")
            options.setdefault(arg, []).append(argv[i + 1])
            i += 1
        else:
            raise Refused(f"unknown option {arg}")
        i += 1
    for required in ("--id", "--exec-file", "--uid", "--gid"):
        if required not in options:
            raise Refused(f"missing argument {required}")
    if not _ID.fullmatch(options["--id"][-1]):
        raise Refused(f"invalid instance id {options['--id'][-1]!r}")
    exec_file = Path(options["--exec-file"][-1])
    if not exec_file.is_file():
        raise Refused(f"exec file {exec_file} does not exist")
    if "firecracker" not in exec_file.name:
        raise Refused(f"exec file name {exec_file.name} must include 'firecracker'")
    for number in ("--uid", "--gid"):
        if not options[number][-1].isdigit():
            raise Refused(f"invalid {number} {options[number][-1]!r}")
    if not Path(options.get("--chroot-base-dir", ["/srv/jailer"])[-1]).is_absolute():
        raise Refused("the chroot base must be an absolute path")
    if options.get("--cgroup-version", ["1"])[-1] not in ("1", "2"):
        raise Refused("cgroup version must be 1 or 2")
    for setting in options.get("--cgroup", []):
        key, sep, value = setting.partition("=")
        if not sep or not value or "." not in key or "/" in key:
            raise Refused(f"invalid cgroup {setting!r}: want FILE=VALUE")
    return options, rest


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: str, target: Path, flags: int, fstype: str | None = None) -> None:
    kind = fstype.encode() if fstype else None
    _check(_libc.mount(source.encode(), str(target).encode(), kind, flags, None),
           f"mount {source} on {target}")


def _bind_read_only(source: Path, target: Path) -> None:
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()
    _mount(str(source), target, _MS_BIND | _MS_REC)
    _mount("none", target, _MS_BIND | _MS_REMOUNT | _MS_RDONLY)


def _cgroup(options: dict[str, list[str]], jail_id: str, exec_name: str) -> None:
    settings = [s.split("=", 1) for s in options.get("--cgroup", [])]
    if not settings:
        return
    parent = options.get("--parent-cgroup", [exec_name])[-1]
    pid = f"{os.getpid()}\n"
    if options.get("--cgroup-version", ["1"])[-1] == "2":
        group = CGROUPS / parent / jail_id
        group.mkdir(parents=True, exist_ok=True)
        for key, value in settings:
            (group / key).write_text(f"{value}\n")
        (group / "cgroup.procs").write_text(pid)
        return
    for key, value in settings:
        group = CGROUPS / key.split(".")[0] / parent / jail_id
        group.mkdir(parents=True, exist_ok=True)
        (group / key).write_text(f"{value}\n")
        (group / "tasks").write_text(pid)


def _device(path: Path, major: int, minor: int, uid: int, gid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, 0o600 | 0o020000, os.makedev(major, minor))
    os.chown(path, uid, gid)


def jail(argv: list[str]) -> None:
    started, started_cpu = time.monotonic_ns(), time.process_time_ns()
    options, rest = parse(argv)
    if os.geteuid() != 0:
        raise Refused("the jailer must run as root")
    jail_id = options["--id"][-1]
    exec_file = Path(options["--exec-file"][-1])
    uid, gid = int(options["--uid"][-1]), int(options["--gid"][-1])
    base = Path(options.get("--chroot-base-dir", ["/srv/jailer"])[-1])
    root = base / exec_file.name / jail_id / "root"
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy2(exec_file, root / exec_file.name)
    _cgroup(options, jail_id, exec_file.name)
    if "--netns" in options:
        with open(options["--netns"][-1]) as netns:
            _check(_libc.setns(netns.fileno(), _CLONE_NEWNET), "setns")
    _check(_libc.unshare(_CLONE_NEWNS), "unshare")
    _mount("none", Path("/"), _MS_REC | _MS_PRIVATE)
    # The stand-in's difference (see the module doc): what a Python program needs to run.
    _bind_read_only(Path("/usr"), root / "usr")
    for name in _SYMLINKS:
        host = Path("/") / name
        if host.is_symlink() and not (root / name).is_symlink():
            (root / name).symlink_to(os.readlink(host))
    _bind_read_only(REPO, root / str(REPO).lstrip("/"))
    for name in _DEVICES:
        _bind_read_only(Path("/dev") / name, root / "dev" / name)
    # The stand-in hands QEMU the guest's RAM as /proc/self/fd/N, and reads the host's TSC
    # rate (which a TCG guest is told) from /proc/cpuinfo.
    (root / "proc").mkdir(exist_ok=True)
    _mount("proc", root / "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, "proc")
    tsc = Path("/sys/devices/system/cpu/cpu0/tsc_freq_khz")
    if tsc.exists():
        _bind_read_only(tsc, root / str(tsc).lstrip("/"))
    _device(root / "dev" / "net" / "tun", 10, 200, uid, gid)
    if Path("/dev/kvm").exists():
        _device(root / "dev" / "kvm", 10, 232, uid, gid)
    os.chown(root, uid, gid)
    os.chroot(root)
    os.chdir("/")
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    spent = (time.monotonic_ns() - started) // 1000
    spent_cpu = (time.process_time_ns() - started_cpu) // 1000
    os.execve(f"/{exec_file.name}", [
        f"/{exec_file.name}", f"--id={jail_id}", f"--start-time-us={spent}",
        f"--start-time-cpu-us={spent_cpu}", *rest,
    ], {})


def write_jailer(directory: Path) -> Path:
    """A `jailer` executable in `directory` that runs this stand-in."""
    directory.mkdir(parents=True, exist_ok=True)
    wrapper = directory / "jailer"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {Path(__file__).resolve()} \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper


if __name__ == "__main__":
    try:
        jail(sys.argv[1:])
    except Refused as exc:
        print(f"Jailer error: {exc}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:
        print(f"Jailer error: {exc}", file=sys.stderr)
        sys.exit(1)
