"""banger as an ordinary user on a host nobody prepared: a user made for the test runs the CLI
(and so its own bangerd) in a network namespace of the test's, without root and without
`banger system setup`. Guests get QEMU's user-mode networking; the test checks the
lifecycle, ssh through the forwarded loopback port, exec, `vm run ./repo -- make test`,
NAT to a namespace that plays the internet, what doctor says, and that nothing
privileged (TAP, bridge, nftables table) was made."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    BANGER,
    INTERNET_URL,
    BangerEnv,
    Netns,
    internet_site,
    temporary_netns,
)

FETCH = (
    "import urllib.request\n"
    f"print(urllib.request.urlopen('{INTERNET_URL}', timeout=4).read().decode(), end='')\n"
)


@dataclass
class AsUser(Netns):
    """The test's namespace, entered as `user` with the XDG dirs of the installation under
    `root` (runuser would otherwise set HOME to the user's passwd entry)."""

    user: str = ""
    root: Path = Path()

    def exec_argv(self, argv: list[str]) -> list[str]:
        home = self.root / "home"
        dirs = {
            "HOME": home, "XDG_CONFIG_HOME": home / ".config",
            "XDG_STATE_HOME": home / ".local/state", "XDG_CACHE_HOME": home / ".cache",
            "XDG_RUNTIME_DIR": self.root / "run",
        }
        return [
            *super().exec_argv(["runuser", "-u", self.user, "--", "env"]),
            *(f"{key}={value}" for key, value in dirs.items()), *argv,
        ]

    def as_root(self, argv: list[str]) -> list[str]:
        return Netns(self.name).exec_argv(argv)


@pytest.fixture(scope="module")
def user() -> Iterator[str]:
    name = f"bgtest{os.getpid()}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", "--force", name], check=False, capture_output=True)


@pytest.fixture(scope="module")
def rootless(user: str, test_image: dict[str, str]) -> Iterator[BangerEnv]:
    with temporary_netns() as ns:
        root = Path(tempfile.mkdtemp(prefix="bgu-", dir="/tmp"))
        netns = AsUser(ns.name, user=user, root=root)
        env = None
        try:
            # The tree is made by root, then given to the user before banger first runs.
            env = BangerEnv(root, netns, "warm_start = false\n")
            subprocess.run(["chown", "-R", f"{user}:{user}", str(root)], check=True)
            env.run(
                "image", "register", "--name", "debian-bookworm",
                "--rootfs", test_image["rootfs"], "--kernel", test_image["kernel"],
                "--initrd", test_image["initrd"],
            )
            yield env
        finally:
            if env is not None:
                env.shutdown()
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def internet(rootless: BangerEnv) -> Iterator[Netns]:
    site = Path(tempfile.mkdtemp(prefix="bgi-", dir="/tmp"))
    (site / "index.html").write_text("hello from the internet\n")
    site.chmod(0o755)
    assert isinstance(rootless.netns, AsUser)
    try:
        with internet_site(Netns(rootless.netns.name), site) as ns:
            yield ns
    finally:
        shutil.rmtree(site, ignore_errors=True)


def test_an_ordinary_user_without_setup_gets_user_mode_networking(
    rootless: BangerEnv, user: str, internet: Netns
) -> None:
    netns = rootless.netns
    assert isinstance(netns, AsUser)
    doctor = rootless.run("doctor", check=False).stdout
    assert "user-mode networking" in doctor
    assert f"sudo banger system setup --user {user}" in doctor

    vm = rootless.json("vm", "create", "--name", "solo", "--nat")
    assert vm["ssh_port"] > 1024
    assert os.stat(f"/proc/{vm['pid']}").st_uid == pwd.getpwnam(user).pw_uid  # not root
    assert rootless.run("vm", "ssh", "solo", "--", "true").returncode == 0
    assert rootless.run("vm", "exec", "solo", "--", "echo", "through the agent").stdout == (
        "through the agent\n"
    )
    fetched = rootless.run("vm", "exec", "solo", "--", "python3", "-c", FETCH, timeout=120)
    assert fetched.stdout == "hello from the internet\n"  # NAT through slirp
    shown = rootless.run("vm", "show", "solo").stdout
    assert f"127.0.0.1:{vm['ssh_port']}" in shown and "no .vm names" in shown
    # Plain ssh through the generated ssh_config (its port, the key pinned under the name).
    config = netns.root / "home/.config/banger/ssh_config"
    plain = subprocess.run(netns.exec_argv(["ssh", "-F", str(config), "solo.vm", "hostname"]),
                           capture_output=True, text=True, timeout=120, check=False)
    assert plain.stdout == "solo\n", plain.stderr
    listening = {p["port"]: p["reach"] for p in rootless.json("vm", "ports", "solo")
                 if p["proto"] == "tcp" and p["address"] in ("0.0.0.0", "*")}
    assert listening[22] == "banger vm forward solo 22"
    assert guest_banner_through_forward(rootless, "solo", 47022).startswith(b"SSH-2.0-")

    repo = netns.root / "repo"
    repo.mkdir()
    (repo / "Makefile").write_text("test:\n\t@echo tests pass in $$(hostname)\n")
    for args in (("init", "-q"), ("add", "-A"), ("commit", "-qm", "a Makefile")):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env={
            **os.environ, "GIT_AUTHOR_NAME": "Host", "GIT_AUTHOR_EMAIL": "host@example.test",
            "GIT_COMMITTER_NAME": "Host", "GIT_COMMITTER_EMAIL": "host@example.test",
        })
    subprocess.run(["chown", "-R", f"{user}:{user}", str(repo)], check=True)
    ran = subprocess.run(
        netns.exec_argv(["env", "-C", str(repo), *BANGER, "vm", "run", "--rm", "--name",
                         "runner", "./", "--", "make", "test"]),
        capture_output=True, text=True, timeout=900, check=False, stdin=subprocess.DEVNULL,
    )
    assert ran.returncode == 0, ran.stderr
    assert "tests pass in runner" in ran.stdout

    rootless.run("vm", "delete", "--force", "solo")
    assert rootless.json("vm", "list") == []
    # Nothing privileged was made: no TAP, no bridge (the veth is the test's internet), no
    # nftables table.
    links = Netns(netns.name).links()
    assert [link for link in links if not link.startswith("bgco")] == ["lo"]
    tables = subprocess.run(netns.as_root(["nft", "list", "tables"]), capture_output=True,
                            text=True, check=True).stdout
    assert tables.strip() == ""


def guest_banner_through_forward(env: BangerEnv, name: str, local_port: int) -> bytes:
    """The first bytes the guest's sshd sends through `vm forward NAME LOCAL:22`."""
    forward = subprocess.Popen(
        env.netns.exec_argv([*BANGER, "vm", "forward", name, f"{local_port}:22"]),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )
    read = (f"import socket, time\nfor _ in range(150):\n    try:\n"
            f"        s = socket.create_connection(('127.0.0.1', {local_port}), timeout=30)\n"
            f"        data = s.recv(64)\n        if data:\n            break\n"
            f"    except OSError:\n        pass\n    time.sleep(0.2)\n"
            f"import sys; sys.stdout.buffer.write(data)\n")
    try:
        return subprocess.run(Netns(env.netns.name).exec_argv([sys.executable, "-c", read]),
                              capture_output=True, timeout=120, check=False).stdout
    finally:
        os.killpg(forward.pid, signal.SIGTERM)
        forward.wait(timeout=30)


def test_warm_start_restores_onto_the_user_network(rootless: BangerEnv, user: str) -> None:
    rootless.write_config("warm_start = true\n")
    shutil.chown(rootless.root / "home/.config/banger/config.toml", user, user)
    rootless.run("daemon", "stop")
    assert "warm template" in rootless.run("image", "warm", "debian-bookworm",
                                           timeout=900).stdout
    vm = rootless.json("vm", "create", "--name", "warm")
    assert vm["template"]  # restored: a failed restore would have booted cold without it
    assert rootless.run("vm", "ssh", "warm", "--", "hostname").stdout == "warm\n"
    assert rootless.run("vm", "exec", "warm", "--", "ip", "-4", "-o", "addr", "show",
                        "eth0").stdout.split()[3] == "10.0.2.15/24"
    rootless.run("vm", "delete", "--force", "warm")
