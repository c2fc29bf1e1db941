"""banger as an ordinary user: root runs `banger system setup --user NAME` once (inside the
test's namespace), then that user runs plain `banger` with no root and no sudo: VMs, exec,
`vm run ./repo -- make test`, NAT to a second namespace playing the internet, `.vm` DNS
from the guest and the host. A second user gets a network of their own, and neither user
reaches the other's socket or guests. Teardown leaves no bridge, TAP or rule behind.

The accounts are made with useradd and removed (home and all) even when a test fails."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from banger.core import posixacl
from tests.e2e.conftest import (
    BANGER,
    INTERNET_URL,
    BangerEnv,
    Netns,
    internet_site,
)

FETCH = (
    "import urllib.request\n"
    f"print(urllib.request.urlopen('{INTERNET_URL}', timeout=4).read().decode(), end='')\n"
)


def connect(address: str, port: int) -> list[str]:
    return [sys.executable, "-c", "import socket, sys; socket.create_connection("
            f"({address!r}, {port}), timeout=3); print('connected')"]


class AsUser(Netns):
    """Runs a command in the test's namespace as `user`, with only the environment given."""

    def __init__(self, netns: Netns, user: str, env: dict[str, str]) -> None:
        super().__init__(netns.name)
        self.user = user
        self.user_env = env

    def exec_argv(self, argv: list[str]) -> list[str]:
        variables = [f"{k}={v}" for k, v in self.user_env.items()]
        return super().exec_argv(["runuser", "-u", self.user, "--", "env", "-i", *variables,
                                  *argv])


@contextlib.contextmanager
def ordinary_user(netns: Netns, tag: str) -> Iterator[BangerEnv]:
    """A new account with its own banger installation (HOME and XDG dirs), the test image
    registered; deleted with everything it made at the end."""
    name = f"bgtest{os.getpid() % 100000}{tag}"
    root = Path(tempfile.mkdtemp(prefix=f"bgu{tag}-", dir="/tmp"))
    subprocess.run(["useradd", "-M", "-d", str(root / "home"), "-s", "/bin/sh", name],
                   check=True)
    env: BangerEnv | None = None
    try:
        env = BangerEnv(root, netns, "warm_start = false\n")
        shutil.chown(root, name, name)
        for path in root.rglob("*"):
            shutil.chown(path, name, name)
        keep = ("HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME",
                "XDG_RUNTIME_DIR", "PATH")
        env.netns = AsUser(netns, name, {k: env.env[k] for k in keep} | {"USER": name})
        yield env
    finally:
        if env is not None:
            env.shutdown()
        system(netns, "teardown", "--user", name, check=False)
        subprocess.run(["userdel", "-r", name], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def system(netns: Netns, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`banger system ...` as root in the test's namespace."""
    proc = subprocess.run(netns.exec_argv([*BANGER, "system", *args]), capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"banger system {' '.join(args)} exited {proc.returncode}\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def user_of(env: BangerEnv) -> str:
    assert isinstance(env.netns, AsUser)
    return env.netns.user


def links(netns: Netns, prefix: str) -> list[str]:
    return [link for link in netns.links() if link.startswith(prefix)]


def nft_inet(netns: Netns) -> str:
    return subprocess.run(netns.exec_argv(["nft", "list", "table", "inet", "banger"]),
                          capture_output=True, text=True, check=False).stdout


@pytest.fixture(scope="module")
def alice(netns: Netns, test_image: dict[str, str]) -> Iterator[tuple[BangerEnv, dict]]:
    with ordinary_user(netns, "a") as env:
        setup = json.loads(system(netns, "setup", "--user", user_of(env), "--json").stdout)
        env.run("image", "register", "--name", "debian-bookworm", "--rootfs",
                test_image["rootfs"], "--kernel", test_image["kernel"], "--initrd",
                test_image["initrd"])
        yield env, setup


@pytest.fixture(scope="module")
def internet(netns: Netns) -> Iterator[Netns]:
    site = Path(tempfile.mkdtemp(prefix="bgi-", dir="/tmp"))
    (site / "index.html").write_text("hello from the internet\n")
    try:
        with internet_site(netns, site) as ns:
            yield ns
    finally:
        shutil.rmtree(site, ignore_errors=True)


def test_one_privileged_command_then_plain_banger(
    alice: tuple[BangerEnv, dict], internet: Netns,
) -> None:
    env, setup = alice
    net = setup["network"]
    assert "not persisted" in setup["persisted"]  # no systemd on this machine
    description = Path(setup["description"])
    assert description.stat().st_uid == 0 and description.stat().st_mode & 0o777 == 0o644

    status = env.json("daemon", "status")
    assert status["network"] == "pool"
    daemon = status["pid"]
    assert Path(f"/proc/{daemon}").stat().st_uid != 0
    doctor = {c["name"]: c for c in env.json("doctor")}
    assert doctor["network mode"]["detail"].startswith("pool:")
    assert doctor["dns server"]["status"] == "ok", doctor["dns server"]

    vm = env.json("vm", "create", "--name", "web", "--nat")
    assert vm["tap"] in {s["tap"] for s in net["slots"] if s["nat"]}
    assert env.run("vm", "exec", "web", "--", "id", "-un").stdout == "root\n"

    # NAT out to "the internet" through root's rules.
    fetched = env.run("vm", "exec", "web", "--", "python3", "-c", FETCH, timeout=60)
    assert fetched.stdout == "hello from the internet\n"

    # .vm names from the host side (gateway:53, redirected to the user's port).
    dig = subprocess.run(env.netns.exec_argv(["dig", f"@{net['gateway']}", "web.vm", "+short",
                                              "+tries=1", "+time=3"]),
                         capture_output=True, text=True, check=True)
    assert dig.stdout.strip() == vm["ip"]

    # vm run ./repo -- make test, in a VM of the contained half of the pool.
    repo = env.root / "home/repo"
    repo.mkdir()
    (repo / "Makefile").write_text("test:\n\t@echo tests pass in $$(hostname)\n")
    for argv in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=t", "-c", "user.email=t@example.test", "commit", "-qm", "i"]):
        subprocess.run(["git", "-C", str(repo), *argv], check=True)
    subprocess.run(["chown", "-R", f"{user_of(env)}:", str(repo)], check=True)
    ran = env.run("vm", "run", "--name", "ci", str(repo), "--", "make", "test", timeout=900)
    assert ran.stdout.splitlines()[-1] == "tests pass in ci", ran.stderr
    ci = env.json("vm", "show", "ci")
    assert ci["tap"] in {s["tap"] for s in net["slots"] if not s["nat"]}
    assert env.run("vm", "exec", "ci", "--", "python3", "-c", FETCH, check=False,
                   timeout=60).returncode != 0  # no NAT: no way out
    # ... and from a guest (its resolver is the gateway; its own name is in /etc/hosts).
    resolve = "import socket; print(socket.gethostbyname('ci.vm'))"
    assert env.run("vm", "exec", "web", "--", "python3", "-c", resolve).stdout.strip() == \
        ci["ip"]
    env.run("vm", "delete", "--force", "ci")

    # What root's fixed rules cannot do is one line with a hint.
    refused = env.run("vm", "create", "--name", "eg", "--egress-allow", "198.51.100.0/24",
                      check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: egress allowlists need per-VM firewall rules")
    assert "hint:" in refused.stderr


def test_two_users_have_their_own_networks_and_cannot_reach_each_other(
    alice: tuple[BangerEnv, dict], netns: Netns, test_image: dict[str, str],
) -> None:
    env_a, setup_a = alice
    web = env_a.json("vm", "show", "web")
    with ordinary_user(netns, "b") as env_b:
        setup_b = json.loads(system(netns, "setup", "--user", user_of(env_b), "--json").stdout)
        assert setup_b["network"]["cidr"] != setup_a["network"]["cidr"]
        env_b.run("image", "register", "--name", "debian-bookworm", "--rootfs",
                  test_image["rootfs"], "--kernel", test_image["kernel"], "--initrd",
                  test_image["initrd"])
        other = env_b.json("vm", "create", "--name", "web", "--nat")  # same name, own daemon
        assert other["ip"] != web["ip"]
        assert env_b.json("daemon", "status")["pid"] != env_a.json("daemon", "status")["pid"]

        # B cannot talk to A's daemon.
        sock = env_a.socket
        probe = [sys.executable, "-c", "import socket; s = socket.socket(socket.AF_UNIX); "
                 f"s.connect({str(sock)!r})"]
        refused = subprocess.run(env_b.netns.exec_argv(probe), capture_output=True, text=True)
        assert refused.returncode != 0 and "PermissionError" in refused.stderr

        # B's guest (with NAT) cannot reach A's guest or A's gateway; A's own host side can.
        for address in (web["ip"], setup_a["network"]["gateway"]):
            guest_probe = ["python3", *connect(address, 22)[1:]]
            tried = env_b.run("vm", "exec", "web", "--", *guest_probe, check=False, timeout=60)
            assert tried.returncode != 0, f"B's guest reached {address}"
        # B on the host cannot open connections to A's guests; A can.
        assert subprocess.run(env_b.netns.exec_argv(connect(web["ip"], 22)),
                              capture_output=True).returncode != 0
        assert subprocess.run(env_a.netns.exec_argv(connect(web["ip"], 22)),
                              capture_output=True, text=True).stdout == "connected\n"
        bridge_b = setup_b["network"]["bridge"]
    # B's teardown (by the context's end) took B's bridge and TAPs, not A's.
    assert bridge_b not in netns.links()
    assert setup_a["network"]["bridge"] in netns.links()


def test_warm_start_takes_slots_too(alice: tuple[BangerEnv, dict], internet: Netns) -> None:
    env, setup = alice
    slots = {s["tap"]: s for s in setup["network"]["slots"]}
    env.write_config("warm_start = true\n")
    env.run("daemon", "stop")
    assert "warm template" in env.run("image", "warm", "debian-bookworm", timeout=900).stdout
    made = env.run("vm", "create", "--name", "warm", "--nat", "--json", timeout=600)
    assert "restor" in made.stderr, made.stderr
    vm = json.loads(made.stdout)
    assert (vm["ip"], vm["mac"]) == (slots[vm["tap"]]["ip"], slots[vm["tap"]]["mac"])
    assert env.run("vm", "exec", "warm", "--", "hostname").stdout == "warm\n"
    assert env.run("vm", "exec", "warm", "--", "python3", "-c", FETCH,
                   timeout=60).stdout == "hello from the internet\n"
    env.run("vm", "delete", "--force", "warm")


def test_teardown_leaves_no_bridge_tap_or_rule_behind(
    alice: tuple[BangerEnv, dict], netns: Netns,
) -> None:
    env, setup = alice
    net = setup["network"]
    env.shutdown()  # VMs deleted, daemon stopped
    out = system(netns, "teardown", "--user", user_of(env)).stdout
    assert f"removed the network of {user_of(env)}" in out
    assert net["bridge"] not in netns.links()
    assert not set(netns.links()) & {s["tap"] for s in net["slots"]}
    assert net["bridge"] not in nft_inet(netns)
    assert not Path(setup["description"]).exists()
    uid = pwd.getpwnam(user_of(env)).pw_uid
    with contextlib.suppress(OSError):  # no ACL at all is fine too
        acl = posixacl.parse(os.getxattr("/dev/net/tun", posixacl.XATTR))
        assert posixacl.user_perm(acl, uid) is None
    assert system(netns, "teardown", "--user", user_of(env)).stdout == "nothing to remove\n"
