"""NAT: a second network namespace plays "the internet" (see conftest.internet_site): it has
no route back to the guest subnet, so a guest reaches its web server only when banger
masquerades the guest's traffic (--nat)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import INTERNET_URL, BangerEnv, Netns, internet_site

FETCH = (
    "import urllib.request\n"
    f"print(urllib.request.urlopen('{INTERNET_URL}', timeout=4).read().decode(), end='')\n"
)


@pytest.fixture
def internet(banger: BangerEnv) -> Iterator[Netns]:
    site = Path(tempfile.mkdtemp(prefix="bgi-", dir="/tmp"))
    (site / "index.html").write_text("hello from the internet\n")
    try:
        with internet_site(banger.netns, site) as ns:
            yield ns
    finally:
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
    table = nft_table(banger)
    assert vm["ip"] not in table
    live = [v for v in banger.json("vm", "list") if v["state"] in ("running", "paused")]
    if not live:  # the session's other tests may leave live guests, whose rules stay
        assert table == ""  # the last guest gone: no table left behind
