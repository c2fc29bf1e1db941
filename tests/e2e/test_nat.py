"""NAT: a second network namespace plays "the internet" (198.51.100.1, a documentation
address that exists only inside it), joined to the test namespace by a veth pair. It has no
route back to the guest subnet, so a guest reaches its web server only when banger
masquerades the guest's traffic (--nat)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import BangerEnv, Netns

INTERNET_IP = "198.51.100.1"
URL = f"http://{INTERNET_IP}:8080/"
FETCH = (
    "import urllib.request\n"
    f"print(urllib.request.urlopen('{URL}', timeout=4).read().decode(), end='')\n"
)


@pytest.fixture
def internet(banger: BangerEnv) -> Iterator[Netns]:
    ns = Netns(f"bgi-{uuid.uuid4().hex[:8]}")
    inner, outer = f"bgvi{uuid.uuid4().hex[:6]}", f"bgvo{uuid.uuid4().hex[:6]}"
    site = Path(tempfile.mkdtemp(prefix="bgi-", dir="/tmp"))
    (site / "index.html").write_text("hello from the internet\n")
    server: subprocess.Popen[bytes] | None = None
    subprocess.run(["ip", "netns", "add", ns.name], check=True)
    try:
        # Both ends are created straight inside the two test namespaces.
        subprocess.run(["ip", "link", "add", outer, "netns", banger.netns.name, "type", "veth",
                        "peer", "name", inner, "netns", ns.name], check=True)
        for argv in (
            ns.exec_argv(["ip", "link", "set", "lo", "up"]),
            ns.exec_argv(["ip", "addr", "add", f"{INTERNET_IP}/24", "dev", inner]),
            ns.exec_argv(["ip", "link", "set", inner, "up"]),
            banger.netns.exec_argv(["ip", "addr", "add", "198.51.100.2/24", "dev", outer]),
            banger.netns.exec_argv(["ip", "link", "set", outer, "up"]),
        ):
            subprocess.run(argv, check=True)
        server = subprocess.Popen(ns.exec_argv([
            sys.executable, "-m", "http.server", "8080", "--bind", INTERNET_IP,
            "--directory", str(site),
        ]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(50):
            probe = subprocess.run(
                ns.exec_argv([sys.executable, "-c", FETCH]), capture_output=True, text=True,
                check=False,
            )
            if probe.stdout:
                break
            time.sleep(0.2)
        yield ns
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "netns", "del", ns.name], check=False)  # takes the veth along
        shutil.rmtree(site, ignore_errors=True)


def guest_fetch(env: BangerEnv, name: str) -> subprocess.CompletedProcess[str]:
    return env.run("vm", "ssh", name, "--", "python3", "-c", FETCH, check=False, timeout=60)


def nft_table(env: BangerEnv) -> str:
    return subprocess.run(
        env.netns.exec_argv(["nft", "list", "table", "inet", "banger"]),
        capture_output=True, text=True, check=False,
    ).stdout


def test_guest_reaches_the_outside_only_with_nat(banger: BangerEnv, internet: Netns) -> None:
    vm = banger.json("vm", "create", "--name", "natvm")
    assert vm["nat"] is False
    assert guest_fetch(banger, "natvm").returncode != 0

    assert "nat on" in banger.run("vm", "set", "natvm", "--nat").stdout  # while running
    assert banger.json("vm", "show", "natvm")["nat"] is True
    assert guest_fetch(banger, "natvm").stdout == "hello from the internet\n"
    table = nft_table(banger)
    assert f"ip saddr {vm['ip']}" in table and "masquerade" in table
    forwarding = subprocess.run(
        banger.netns.exec_argv(["sysctl", "-n", "net.ipv4.ip_forward"]),
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert forwarding == "1"

    # Stopping removes the guest's rules; starting puts them back.
    banger.run("vm", "stop", "natvm")
    assert vm["ip"] not in nft_table(banger)
    banger.run("vm", "start", "natvm")
    assert f"ip saddr {vm['ip']}" in nft_table(banger)

    # A daemon restart rebuilds the table from the store.
    banger.run("daemon", "stop")
    subprocess.run(banger.netns.exec_argv(["nft", "delete", "table", "inet", "banger"]),
                   check=True)
    banger.json("vm", "list")  # starts a new daemon, which syncs before it listens
    assert f"ip saddr {vm['ip']}" in nft_table(banger)
    assert guest_fetch(banger, "natvm").stdout == "hello from the internet\n"

    assert "nat off" in banger.run("vm", "set", "natvm", "--no-nat").stdout
    assert vm["ip"] not in nft_table(banger)
    assert guest_fetch(banger, "natvm").returncode != 0

    banger.run("vm", "set", "natvm", "--nat")
    banger.run("vm", "delete", "--force", "natvm")
    assert nft_table(banger) == ""  # the last NATed guest gone: no table left behind
