"""`<name>.vm` DNS: the daemon answers on the bridge address for running VMs only, survives
garbage, and the host reaches a guest's web server by name."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import BangerEnv

SERVER = "172.16.0.1"


def dig(env: BangerEnv, name: str, *extra: str) -> tuple[str, list[str]]:
    """(status, A records) of `name` asked straight at the daemon's DNS server."""
    out = subprocess.run(
        env.netns.exec_argv(["dig", f"@{SERVER}", name, "A", "+tries=1", "+time=3", *extra]),
        capture_output=True, text=True, timeout=30, check=False,
    ).stdout
    status = next((line.split("status: ")[1].split(",")[0]
                   for line in out.splitlines() if "status: " in line), "no answer")
    records = [line.split()[-1] for line in out.splitlines()
               if not line.startswith(";") and "\tA\t" in line]
    return status, records


def wait_for(predicate: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def netns_resolver(banger: BangerEnv) -> Iterator[None]:
    """/etc/resolv.conf for processes started with `ip netns exec` in the test namespace
    (iproute2 bind-mounts /etc/netns/NAME/resolv.conf over it): our DNS server only."""
    directory = Path("/etc/netns") / banger.netns.name
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "resolv.conf").write_text(f"nameserver {SERVER}\noptions timeout:2\n")
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            (directory / "resolv.conf").unlink()
        if created:
            shutil.rmtree(directory, ignore_errors=True)


def test_vm_names_resolve_while_running_and_reach_the_guest(
    banger: BangerEnv, netns_resolver: None
) -> None:
    vm = banger.json("vm", "create", "--name", "dnsweb")
    assert dig(banger, "dnsweb.vm") == ("NOERROR", [vm["ip"]])
    assert dig(banger, "DNSWEB.vm")[1] == [vm["ip"]]
    assert dig(banger, "nosuchvm.vm")[0] == "NXDOMAIN"
    assert dig(banger, "dnsweb.vm", "AAAA")[0] == "NOERROR"

    # Garbage and oversized packets do not take the server down.
    subprocess.run(banger.netns.exec_argv([sys.executable, "-c", (
        "import os, socket\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "for size in (0, 1, 11, 12, 13, 64, 512, 4000, 9000, 60000):\n"
        f"    s.sendto(os.urandom(size), ('{SERVER}', 53))\n"
        f"s.sendto(b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00'"
        f" + b'\\xc0\\x0c\\x00\\x01\\x00\\x01', ('{SERVER}', 53))\n"
    )]), check=True, timeout=30)
    assert dig(banger, "dnsweb.vm") == ("NOERROR", [vm["ip"]])
    assert dig(banger, "dnsweb.vm", "+tcp") == ("NOERROR", [vm["ip"]])

    # The host fetches the guest's web server by name, resolved by the daemon.
    banger.run("vm", "ssh", "dnsweb", "--", "sh", "-c",
               "mkdir -p /root/www && echo hello-from-dnsweb > /root/www/index.html && "
               "cd /root/www && setsid -f python3 -m http.server 3000 >/dev/null 2>&1")

    def fetch() -> subprocess.CompletedProcess[str]:
        # getaddrinfo, as any program on the host would: /etc/resolv.conf -> our server.
        return subprocess.run(
            banger.netns.exec_argv_with_etc([sys.executable, "-c", (
                "import urllib.request\n"
                "print(urllib.request.urlopen('http://dnsweb.vm:3000/', timeout=5)"
                ".read().decode(), end='')"
            )]),
            capture_output=True, text=True, timeout=30, check=False,
        )

    assert wait_for(lambda: fetch().stdout == "hello-from-dnsweb\n", 30), fetch().stderr

    banger.run("vm", "stop", "dnsweb")
    assert dig(banger, "dnsweb.vm")[0] == "NXDOMAIN"
    banger.run("vm", "start", "dnsweb")
    assert dig(banger, "dnsweb.vm") == ("NOERROR", [vm["ip"]])
    banger.run("vm", "delete", "--force", "dnsweb")
    assert dig(banger, "dnsweb.vm")[0] == "NXDOMAIN"


def test_doctor_reports_dns(banger: BangerEnv) -> None:
    checks = {c["name"]: c for c in banger.json("doctor")}
    assert checks["dns server"]["status"] == "ok"
    assert f"{SERVER}:53" in checks["dns server"]["detail"]
    # This test host has no systemd-resolved: doctor gives the recipe instead.
    if not Path("/run/systemd/resolve/io.systemd.Resolve").exists():
        assert checks["dns routing"]["status"] == "warn"
        assert f"server=/vm/{SERVER}" in checks["dns routing"]["hint"]
