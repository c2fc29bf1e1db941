"""banger driving a remote host's bangerd through ssh only.

A second network namespace plays the remote host: the remote user's bangerd (its own XDG
dirs) and an sshd (tests/e2e/sshd_stub.py) on 10.77.0.2; the CLI runs in the session's
namespace with its own HOME, BANGER_HOST=ssh://root@10.77.0.2:2222 and a test key (0600),
and has no other way to the remote host: no shared socket, no shared files."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    BANGER,
    BangerEnv,
    Netns,
    joined_namespace,
    make_env,
)

REMOTE_IP = "10.77.0.2"
PORT = 2222
URL = f"ssh://root@{REMOTE_IP}:{PORT}"
STUB = Path(__file__).with_name("sshd_stub.py")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Laptop", "GIT_AUTHOR_EMAIL": "laptop@example.test",
    "GIT_COMMITTER_NAME": "Laptop", "GIT_COMMITTER_EMAIL": "laptop@example.test",
}


@dataclass
class Remote:
    laptop: BangerEnv  # the CLI's side: BANGER_HOST set, no daemon of its own
    host: BangerEnv  # the remote user's banger, in the remote namespace
    ssh_config: Path  # how the laptop's ssh reaches the remote host (key, pinned host key)


def _wait_for(address: tuple[str, int], netns: Netns) -> None:
    probe = f"import socket; socket.create_connection({address!r}, timeout=1).close()"
    for _ in range(100):
        if subprocess.run(netns.exec_argv([sys.executable, "-c", probe]),
                          capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {address}")


@pytest.fixture(scope="module")
def remote(netns: Netns, test_image: dict[str, str], tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[Remote]:
    work = tmp_path_factory.mktemp("remote")
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    key.chmod(0o600)
    with joined_namespace(netns, [f"{REMOTE_IP}/24"], "10.77.0.1/24") as remote_ns:
        host = make_env(remote_ns, test_image)  # starts the remote user's bangerd there
        sshd: subprocess.Popen[str] | None = None
        laptop: BangerEnv | None = None
        try:
            remote_env = {k: v for k, v in host.env.items() if k.startswith("XDG_")}
            remote_env["PATH"] = f"{os.path.dirname(sys.executable)}:/usr/sbin:/usr/bin:/bin"
            sshd = subprocess.Popen(
                remote_ns.exec_argv([
                    sys.executable, str(STUB), REMOTE_IP, str(PORT), str(work / "host_key"),
                    f"{key}.pub", json.dumps(remote_env),
                ]), stdout=subprocess.PIPE, text=True,
            )
            assert sshd.stdout is not None and sshd.stdout.readline().strip() == "ready"
            _wait_for((REMOTE_IP, PORT), netns)
            host_key = (work / "host_key.pub").read_text().strip()
            (work / "known_hosts").write_text(f"[{REMOTE_IP}]:{PORT} {host_key}\n")
            config = work / "ssh_config"
            config.write_text(
                f"Host {REMOTE_IP}\n    IdentityFile {key}\n    IdentitiesOnly yes\n"
                f"    UserKnownHostsFile {work / 'known_hosts'}\n"
                "    StrictHostKeyChecking yes\n    BatchMode yes\n"
            )
            laptop = BangerEnv(work / "laptop", netns)
            laptop.env.update({
                "BANGER_HOST": URL, "BANGER_SSH_COMMAND": f"ssh -F {config}",
                "PATH": "/usr/sbin:/usr/bin:/bin",  # no banger of its own to fall back on
            })
            yield Remote(laptop, host, config)
        finally:
            if laptop is not None:
                _stop_shared_connection(laptop)
            host.shutdown()
            if sshd is not None:
                sshd.kill()
                sshd.wait()
            for pid in remote_ns.pids():  # the namespace is ours: only what we started
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            shutil.rmtree(host.root, ignore_errors=True)


def _stop_shared_connection(laptop: BangerEnv) -> None:
    """The ControlMaster banger's ssh left running (ControlPersist)."""
    from banger.client.remote import control_path
    from banger.core.remote import parse_host

    remote = parse_host(URL)
    assert remote is not None
    path = control_path(laptop.env, remote)
    subprocess.run(
        laptop.netns.exec_argv([*shlex.split(laptop.env["BANGER_SSH_COMMAND"]),
                                "-o", f"ControlPath={path}", "-O", "exit", *remote.ssh_args()]),
        capture_output=True, check=False, timeout=30,
    )


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
        env={**os.environ, **GIT_ENV},
    ).stdout


@pytest.mark.timeout(1800)
def test_the_laptop_drives_the_remote_host(remote: Remote, tmp_path: Path) -> None:
    laptop = remote.laptop
    # The remote daemon answers through ssh; contexts name it too.
    assert laptop.json("vm", "list") == []
    status = laptop.json("daemon", "status")
    assert status["pid"] == remote.host.daemon_pid()
    laptop.run("context", "add", "lab", URL)
    no_host = {k: v for k, v in laptop.env.items() if k != "BANGER_HOST"}
    listed = subprocess.run(
        laptop.netns.exec_argv([sys.executable, "-m", "banger.cli", "--context", "lab",
                                "vm", "list", "--json"]),
        env=no_host, capture_output=True, text=True, check=True, timeout=120,
    )
    assert json.loads(listed.stdout) == []

    # vm run ./repo: the laptop's checkout (uncommitted edit included) in the remote VM.
    repo = tmp_path / "app"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "hello.txt").write_text("hello from the laptop\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")
    (repo / "hello.txt").write_text("hello, edited on the laptop\n")
    ran = laptop.run(
        "vm", "run", "--name", "far", str(repo), "--", "sh", "-c",
        "cat hello.txt && echo made in the guest > new.txt && hostname", timeout=900,
    )
    assert ran.stdout.splitlines()[-2:] == ["hello, edited on the laptop", "far"], ran.stderr
    assert (remote.host.json("vm", "show", "far"))["state"] == "running"

    # The patch comes back to the laptop.
    patch = tmp_path / "far.patch"
    laptop.run("vm", "workspace", "export", "far", "-o", str(patch))
    assert "+made in the guest" in patch.read_text()

    # vm exec and vm cp (a directory, both ways) go through the API, bodies streamed.
    assert laptop.run("vm", "exec", "far", "--", "cat", "/root/repo/new.txt").stdout == (
        "made in the guest\n")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "data.bin").write_bytes(os.urandom(300_000))
    laptop.run("vm", "cp", str(tree), "far:/root/")
    back = tmp_path / "back"
    laptop.run("vm", "cp", "far:/root/tree", str(back))
    assert (back / "sub" / "data.bin").read_bytes() == (tree / "sub" / "data.bin").read_bytes()

    # Completion lists the remote host's VMs (a Tab gives up after a few seconds and offers
    # nothing: a loaded host gets three presses).
    for _ in range(3):
        completing = subprocess.run(
            laptop.netns.exec_argv([*BANGER]), capture_output=True, text=True, timeout=120,
            env={**laptop.env, "_BANGER_COMPLETE": "bash_complete",
                 "COMP_WORDS": "banger vm ssh f", "COMP_CWORD": "3"},
            stdin=subprocess.DEVNULL, check=True,
        )
        if completing.stdout:
            break
    assert completing.stdout.splitlines() == ["plain,far"], completing

    # vm ssh and plain `ssh far.vm` hop through the remote host.
    assert laptop.run("vm", "ssh", "far", "--", "hostname").stdout.strip() == "far"
    include = laptop.run("ssh-config").stdout.strip()
    assert include.startswith("Include ")
    generated = Path(include.removeprefix("Include ").strip('"').replace(
        "~", laptop.env["HOME"], 1))
    assert f"ProxyJump root@{REMOTE_IP}:{PORT}" in generated.read_text()
    user_config = tmp_path / "user_ssh_config"
    user_config.write_text(f"Include {generated}\n" + remote.ssh_config.read_text())
    plain = subprocess.run(
        laptop.netns.exec_argv(["ssh", "-F", str(user_config), "far.vm", "hostname"]),
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False,
    )
    assert plain.stdout.strip() == "far", plain.stderr

    # vm forward: the guest's sshd on the laptop's loopback.
    local_port = _free_port()
    forward = subprocess.Popen(
        laptop.netns.exec_argv([sys.executable, "-m", "banger.cli", "vm", "forward", "far",
                                f"{local_port}:22"]),
        env=laptop.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        banner = _read_banner(laptop.netns, local_port)
        assert banner.startswith("SSH-2.0-"), banner
    finally:
        forward.terminate()
        forward.wait(timeout=30)

    laptop.run("vm", "delete", "--force", "far", timeout=300)
    assert laptop.json("vm", "list") == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _read_banner(netns: Netns, port: int) -> str:
    code = (
        "import socket, sys, time\n"
        "for _ in range(100):\n"
        "    try:\n"
        f"        s = socket.create_connection(('127.0.0.1', {port}), timeout=10)\n"
        "        data = s.recv(64)\n"
        "        if data:\n"
        "            print(data.decode(errors='replace').strip()); sys.exit(0)\n"
        "    except OSError:\n"
        "        pass\n"
        "    time.sleep(0.2)\n"
        "sys.exit(1)\n"
    )
    return subprocess.run(netns.exec_argv([sys.executable, "-c", code]), capture_output=True,
                          text=True, timeout=60, check=False).stdout


@pytest.mark.timeout(1800)
def test_images_travel_through_the_connection(remote: Remote, tmp_path: Path) -> None:
    """`image export` writes the laptop's file, `image import` uploads one: the bundle streams
    through ssh, and the imported image boots on the remote host."""
    laptop, host = remote.laptop, remote.host
    bundle = tmp_path / "bookworm.tar.zst"
    started = time.monotonic()
    exported = laptop.run("image", "export", "debian-bookworm", "-o", str(bundle), timeout=900)
    export_s = time.monotonic() - started
    assert "exporting debian-bookworm" in exported.stderr
    assert str(bundle) in exported.stdout and bundle.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [bundle.name]  # no .partial left

    started = time.monotonic()
    imported = laptop.run("image", "import", str(bundle), "--name", "carried", timeout=900)
    import_s = time.monotonic() - started
    assert "importing bookworm.tar.zst" in imported.stderr
    carried = host.json("image", "show", "carried")
    assert carried["managed"] and carried["source"].startswith("import: bookworm.tar.zst")
    assert Path(carried["rootfs"]).parent == host.state_dir / "images" / "carried"
    print(f"\nover ssh: export {export_s:.1f}s, import {import_s:.1f}s, bundle "
          f"{bundle.stat().st_size >> 20} MiB")

    ran = laptop.run("vm", "run", "--rm", "--name", "fromlaptop", "--image", "carried", "--",
                     "hostname", timeout=900)
    assert ran.stdout.strip().splitlines()[-1] == "fromlaptop", ran.stderr

    # A truncated upload: one error, and nothing of it on the remote host.
    images_before = sorted(os.listdir(host.state_dir / "images"))
    with open(bundle, "r+b") as f:
        f.truncate(bundle.stat().st_size // 2)
    bad = laptop.run("image", "import", str(bundle), "--name", "broken", check=False,
                     timeout=900)
    assert bad.returncode != 0 and bad.stderr.count("error:") == 1, bad.stderr
    assert "Traceback" not in bad.stderr
    assert sorted(os.listdir(host.state_dir / "images")) == images_before
    assert "broken" not in [i["name"] for i in host.json("image", "list")]

    # Registering files stays on the daemon's host: one line saying so, and where to run it.
    refused = laptop.run("image", "register", "--name", "x", "--rootfs", "/srv/rootfs.ext4",
                         "--kernel", "/srv/vmlinuz", check=False)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 2, refused.stderr
    assert f"daemon's host ({URL})" in refused.stderr
    assert f"hint: run it on that host: ssh root@{REMOTE_IP}" in refused.stderr

    laptop.run("image", "delete", "carried")
    assert not (host.state_dir / "images" / "carried").exists()
