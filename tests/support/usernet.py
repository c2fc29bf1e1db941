"""A temporary stand-in for the places `banger system setup` writes and reads."""

from __future__ import annotations

from pathlib import Path

from banger.host.usernet import SystemLayout


def layout(tmp_path: Path, *, systemd: bool = False) -> SystemLayout:
    running = tmp_path / "run/systemd/system"
    if systemd:
        running.mkdir(parents=True)
    net_dev(tmp_path, [])
    tun = tmp_path / "tun"
    tun.touch()
    tun.chmod(0o666)
    return SystemLayout(users_dir=tmp_path / "users", systemd_dir=tmp_path / "systemd",
                        systemd_running=running, proc_net_dev=tmp_path / "net_dev",
                        tun=tun, kvm=tmp_path / "kvm")


def net_dev(tmp_path: Path, names: list[str]) -> None:
    """A /proc/net/dev listing `names` (what the fake `ip` made)."""
    rows = "".join(f"{name:>6}: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n" for name in names)
    (tmp_path / "net_dev").write_text("Inter-| header\n face |header\n" + rows)
