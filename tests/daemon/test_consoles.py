from __future__ import annotations

from pathlib import Path

from banger.daemon.consoles import ConsoleKeeper, console_logs
from banger.host.consolelog import dropped_bytes


def test_the_keeper_cuts_back_every_vms_and_template_vms_console(tmp_path: Path) -> None:
    vms, templates = tmp_path / "vms", tmp_path / "templates"
    logs = [vms / "aa" / "console.log", vms / "bb" / "console.log",
            templates / "qemu" / ".build-1" / "console.log"]
    for log in logs:
        log.parent.mkdir(parents=True)
        log.write_bytes(b"x" * 100_000)
    (vms / "aa" / "console.log.dropped").write_text("0\n")
    quiet = vms / "cc" / "console.log"
    quiet.parent.mkdir()
    quiet.write_bytes(b"booted\n")
    roots = [(vms, 1), (templates, 2)]
    assert sorted(console_logs(vms, 1)) == sorted([*logs[:2], quiet])
    ConsoleKeeper(roots, limit=16384).trim_once()
    for log in logs:
        assert log.stat().st_size <= 16384 and dropped_bytes(log) > 0
    assert quiet.read_bytes() == b"booted\n"
