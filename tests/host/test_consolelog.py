"""A bounded console log: cut at its head, read by logical offsets, followed incrementally."""

from __future__ import annotations

from pathlib import Path

import pytest

from banger.host import consolelog
from banger.host.consolelog import ConsoleFollower, dropped_bytes, read_from, restart, trim

LIMIT = 64 * 1024


def guest_writes(path: Path, data: bytes) -> None:
    with open(path, "ab") as log:  # as QEMU does (append=on)
        log.write(data)


def lines(first: int, count: int) -> bytes:
    return b"".join(b"line %06d\n" % n for n in range(first, first + count))


@pytest.fixture(params=["collapse", "copy"])
def console(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Path:
    """Both ways of cutting: in place (ext4, xfs) and by copying the tail (others)."""
    if request.param == "copy":
        monkeypatch.setattr(consolelog, "_collapse", lambda fd, length: False)
    path = tmp_path / "console.log"
    restart(path)
    return path


def test_a_log_within_the_bound_is_left_alone(console: Path) -> None:
    guest_writes(console, b"x" * LIMIT)
    assert trim(console, LIMIT) == 0
    assert console.stat().st_size == LIMIT


def test_a_log_over_the_bound_keeps_its_newest_half(console: Path) -> None:
    written = lines(0, 20000)  # 220 KB
    guest_writes(console, written)
    cut = trim(console, LIMIT)
    assert cut > 0 and console.stat().st_size <= LIMIT
    assert console.read_bytes() == written[cut:]
    assert dropped_bytes(console) == cut
    guest_writes(console, lines(20000, 20000))
    second = trim(console, LIMIT)
    assert dropped_bytes(console) == cut + second
    assert console.read_bytes().endswith(b"line 039999\n")


def test_offsets_stay_valid_across_cuts(console: Path) -> None:
    written = lines(0, 20000)
    guest_writes(console, written[:1000])
    data, offset = read_from(console, 0, 1 << 20)
    assert (data, offset) == (written[:1000], 1000)
    guest_writes(console, written[1000:])
    cut = trim(console, LIMIT)
    data, end = read_from(console, offset, 1 << 20)
    assert data == written[cut:]  # what was cut is gone; the rest follows on
    assert end == len(written)
    assert read_from(console, end, 1 << 20) == (b"", end)


def test_a_new_boot_starts_the_log_over(console: Path) -> None:
    guest_writes(console, lines(0, 20000))
    trim(console, LIMIT)
    restart(console)
    guest_writes(console, b"booting\n")
    assert dropped_bytes(console) == 0
    assert read_from(console, 10**9, 100) == (b"booting\n", 8)


def test_missing_log(tmp_path: Path) -> None:
    assert read_from(tmp_path / "console.log", 5, 100) == (b"", 0)
    assert trim(tmp_path / "console.log", LIMIT) == 0


def test_follower_reads_only_what_is_new_and_finds_a_line_split_across_reads(
    console: Path,
) -> None:
    follower = ConsoleFollower(console, chunk=4096)
    assert follower.read() == b""
    guest_writes(console, b"[    0.1] booting\n[    0.2] APIC freq")
    first = follower.read()
    assert first.startswith(b"[    0.1]")
    guest_writes(console, b"uency too slow\n")
    assert b"APIC frequency too slow" in follower.read()
    assert follower.read() == b""
    guest_writes(console, b"after\n")
    follower.skip()
    assert follower.read() == b"after\n"


def test_follower_keeps_up_with_a_log_that_is_cut(console: Path) -> None:
    follower = ConsoleFollower(console)
    guest_writes(console, lines(0, 20000))
    follower.read()
    trim(console, LIMIT)
    guest_writes(console, b"FAILED here\n")
    assert follower.read() == b"FAILED here\n"
