"""`banger vm ports`: sockets opened in a real guest show up with their process and the
`<name>.vm:<port>` address, and the /proc fallback (for images without iproute2) agrees with
ss on the same guest."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from banger.core.ports import REPORT_SCRIPT, parse_report
from tests.e2e.conftest import BangerEnv

NAME = "porty"
# Three listeners: TCP on all addresses, TCP on loopback only, UDP on all addresses.
LISTENERS = (
    "setsid -f python3 -m http.server 3000 >/dev/null 2>&1; "
    "setsid -f python3 -m http.server 3001 --bind 127.0.0.1 >/dev/null 2>&1; "
    "setsid -f python3 -c 'import socket, time; s = socket.socket(socket.AF_INET, "
    "socket.SOCK_DGRAM); s.bind((\"0.0.0.0\", 5300)); time.sleep(3600)' >/dev/null 2>&1"
)


@pytest.fixture(scope="module")
def vm(banger: BangerEnv) -> Iterator[dict[str, Any]]:
    created: dict[str, Any] = banger.json("vm", "create", "--name", NAME)
    try:
        banger.run("vm", "ssh", NAME, "--", "sh", "-c", LISTENERS)
        yield created
    finally:
        banger.run("vm", "delete", "--force", NAME, check=False, timeout=120)


def listening(banger: BangerEnv, wanted: set[int]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    while True:
        rows: list[dict[str, Any]] = banger.json("vm", "ports", NAME)
        # A socket can show up a moment before ss can name the process that holds it (seen
        # under load): wait for both.
        named = {row["port"] for row in rows if row["process"]}
        if wanted <= named or time.monotonic() > deadline:
            return rows
        time.sleep(1)


def row(rows: list[dict[str, Any]], proto: str, port: int) -> dict[str, Any]:
    matches = [r for r in rows if r["proto"] == proto and r["port"] == port]
    assert matches, f"no {proto} {port} in {rows}"
    return matches[0]


def test_ports_lists_guest_listeners_and_how_to_reach_them(
    banger: BangerEnv, vm: dict[str, Any]
) -> None:
    rows = listening(banger, {3000, 3001, 5300})

    web = row(rows, "tcp", 3000)
    assert web["process"] == "python3" and web["pids"]
    assert web["reach"] == f"{NAME}.vm:3000"
    local = row(rows, "tcp", 3001)
    assert local["address"] == "127.0.0.1" and local["reach"] == ""
    udp = row(rows, "udp", 5300)
    assert (udp["address"], udp["process"], udp["reach"]) == ("0.0.0.0", "python3",
                                                             f"{NAME}.vm:5300")
    sshd = [r for r in rows if r["proto"] == "tcp" and r["port"] == 22 and r["reach"]]
    assert sshd and sshd[0]["process"] == "sshd"

    table = banger.run("vm", "ports", NAME).stdout.splitlines()
    assert table[0].split() == ["PROTO", "ADDRESS", "PORT", "PROCESS", "PID", "REACH"]
    assert any(line.split()[2:4] == ["3000", "python3"] and line.endswith(f"{NAME}.vm:3000")
               for line in table[1:])
    assert any(line.split()[1:3] == ["127.0.0.1", "3001"] and line.endswith(" -")
               for line in table[1:])


def test_the_proc_fallback_agrees_with_ss(banger: BangerEnv, vm: dict[str, Any]) -> None:
    listening(banger, {3000, 3001, 5300})
    with_ss = parse_report(banger.run("vm", "ssh", NAME, "--", "sh", "-c", REPORT_SCRIPT).stdout)
    # The script without its `ss` branch: what a guest without iproute2 runs.
    fallback_script = REPORT_SCRIPT.split("fi\n", 1)[1]
    from_proc = parse_report(banger.run("vm", "ssh", NAME, "--", "sh", "-c",
                                        fallback_script).stdout)

    def summary(sockets: list[Any]) -> set[tuple[str, int, str]]:
        # ss and the tables name a wildcard differently ("*" vs "::"); ports, protocols
        # and process names must agree.
        return {(s.proto, s.port, ",".join(sorted(p.name for p in s.processes)))
                for s in sockets if s.port in (22, 3000, 3001, 5300)}

    assert summary(from_proc) == summary(with_ss)
    assert {s.port for s in with_ss} >= {22, 3000, 3001, 5300}


def test_ports_of_unknown_or_stopped_vms_are_errors(banger: BangerEnv) -> None:
    missing = banger.run("vm", "ports", "no-such-vm", check=False)
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: no VM named 'no-such-vm'")
    banger.run("vm", "create", "--name", "portless", "--no-start")
    try:
        stopped = banger.run("vm", "ports", "portless", check=False)
    finally:
        banger.run("vm", "delete", "portless", check=False)
    assert stopped.returncode == 1
    assert "is not running" in stopped.stderr
    assert "hint: banger vm start portless" in stopped.stderr
