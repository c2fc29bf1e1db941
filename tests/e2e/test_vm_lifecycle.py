"""The walking skeleton, end to end: real guests booted by the real CLI and daemon."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time

from tests.e2e.conftest import BangerEnv


def _vm_names(env: BangerEnv) -> list[str]:
    return [vm["name"] for vm in env.json("vm", "list")]


def _taps(env: BangerEnv) -> list[str]:
    return [link for link in env.netns.links() if link.startswith("bgr")]


def test_run_rm_propagates_output_and_exit_code_and_leaves_nothing(banger: BangerEnv) -> None:
    before_taps = set(_taps(banger))
    before_dirs = set((banger.state_dir / "vms").glob("*"))
    proc = banger.run("vm", "run", "--rm", "--name", "once", "--", "sh", "-c", "echo hi; exit 7",
                      check=False)
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "hi"
    assert "spec:" in proc.stderr
    assert "once" not in _vm_names(banger)
    assert set(_taps(banger)) == before_taps
    assert set((banger.state_dir / "vms").glob("*")) == before_dirs


def test_run_uname_prints_the_guest_kernel(banger: BangerEnv) -> None:
    proc = banger.run("vm", "run", "--rm", "--", "uname", "-a")
    assert proc.stdout.startswith("Linux ")
    assert "cloud-amd64" in proc.stdout


def test_run_command_goes_through_the_agent_and_ssh_works_right_after(
    banger: BangerEnv,
) -> None:
    proc = banger.run("vm", "run", "--name", "viagent", "--", "sh", "-c", "echo on $(hostname)")
    try:
        assert proc.stdout.strip() == "on viagent"
        # No ssh login ran it (the daemon's own wait only reads sshd's banner).
        logins = banger.run("vm", "exec", "viagent", "--", "sh", "-c",
                            "journalctl -o cat | grep -c 'Accepted publickey' || true").stdout
        assert logins.strip() == "0"
        # The run may have returned before sshd was up: a login right after waits for it.
        assert banger.run("vm", "ssh", "viagent", "--", "hostname").stdout.strip() == "viagent"
    finally:
        banger.run("vm", "delete", "--force", "viagent", check=False)


def test_lifecycle_persistence_identity_and_logs(banger: BangerEnv) -> None:
    created = banger.json("vm", "create", "--name", "life", "--memory", "768")
    assert created["state"] == "running"
    assert created["spec"]["memory_mib"] == 768
    ip = created["ip"]

    identity = banger.run(
        "vm", "ssh", "life", "--", "sh", "-c",
        "hostname; ip -4 -o addr show scope global | awk '{print $4}'; "
        "cat /etc/resolv.conf; echo kept > /root/persist.txt; sync",
    ).stdout.split("\n")
    assert identity[0] == "life"
    assert identity[1] == f"{ip}/24"
    assert "nameserver 172.16.0.1" in identity[2]

    # sshd is hardened as the seeds say, with the VM's own pinned host key.
    sshd = banger.run("vm", "ssh", "life", "--", "sshd", "-T").stdout
    for line in ("permitrootlogin without-password", "passwordauthentication no",
                 "kbdinteractiveauthentication no", "pubkeyauthentication yes"):
        assert line in sshd
    known_hosts = (banger.root / "home/.config/banger/ssh/known_hosts").read_text()
    assert f"{ip},life.vm ssh-ed25519 " in known_hosts

    stopped = banger.run("vm", "stop", "life").stdout
    assert "stopped" in stopped
    assert banger.json("vm", "show", "life")["state"] == "stopped"
    assert "bgr" + created["id"] not in _taps(banger)

    banger.run("vm", "start", "life")
    assert banger.run("vm", "ssh", "life", "--", "cat", "/root/persist.txt").stdout == "kept\n"

    # The serial getty's prompt: it comes up next to sshd, not necessarily before it.
    deadline = time.monotonic() + 120
    while "login:" not in (logs := banger.run("vm", "logs", "life").stdout):
        assert time.monotonic() < deadline, logs[-2000:]
        time.sleep(1)

    banger.run("vm", "restart", "life")
    assert banger.json("vm", "show", "life")["state"] == "running"

    banger.run("vm", "kill", "--signal", "KILL", "life")
    assert banger.json("vm", "show", "life")["state"] == "stopped"

    banger.run("vm", "delete", "life")
    assert "life" not in _vm_names(banger)
    assert not (banger.state_dir / "vms" / created["id"]).exists()


def test_daemon_kill_9_reconciles(banger: BangerEnv) -> None:
    survivor = banger.json("vm", "create", "--name", "survivor")
    victim = banger.json("vm", "create", "--name", "victim")
    pid = banger.daemon_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    # While no daemon runs: one guest dies, and a stray TAP appears on our bridge.
    os.kill(victim["pid"], signal.SIGKILL)
    subprocess.run(banger.netns.exec_argv(
        ["sh", "-c", "ip tuntap add dev bgrdeadbeef00 mode tap && "
         "ip link set bgrdeadbeef00 master banger0"]), check=True)
    time.sleep(0.5)

    vms = {vm["name"]: vm for vm in banger.json("vm", "list")}  # starts a new daemon
    assert banger.daemon_pid() not in (None, pid)
    assert vms["survivor"]["state"] == "running"
    assert vms["survivor"]["pid"] == survivor["pid"]
    assert vms["victim"]["state"] == "stopped"
    assert "bgrdeadbeef00" not in _taps(banger)
    assert "bgr" + victim["id"] not in _taps(banger)
    assert banger.run("vm", "ssh", "survivor", "--", "echo", "still here").stdout == "still here\n"

    banger.run("vm", "delete", "--force", "survivor")
    banger.run("vm", "delete", "victim")


def test_daemon_socket_is_private(banger: BangerEnv) -> None:
    status = banger.json("daemon", "status")
    mode = stat.S_IMODE(os.stat(status["socket"]).st_mode)
    assert mode == 0o600
    assert banger.run("daemon", "socket").stdout.strip() == status["socket"]
    for line in (banger.state_dir / "bangerd.log").read_text().splitlines():
        assert line.startswith("{")


def test_pause_and_resume_on_qemu(banger: BangerEnv) -> None:
    banger.json("vm", "create", "--name", "nap")
    assert banger.run("vm", "pause", "nap").stdout.split() == ["nap", "paused"]
    refused = banger.run("vm", "ssh", "nap", "--", "true", check=False)
    assert refused.returncode != 0 and "banger vm resume nap" in refused.stderr
    assert banger.run("vm", "resume", "nap").stdout.split() == ["nap", "running"]
    assert banger.run("vm", "ssh", "nap", "--", "echo", "awake").stdout == "awake\n"

    unsupported = banger.run("vm", "snapshot", "nap", check=False)
    assert unsupported.returncode == 1
    assert "does not support snapshots" in unsupported.stderr
    assert "hint: " in unsupported.stderr

    banger.run("vm", "pause", "nap")
    assert "stopped" in banger.run("vm", "stop", "nap").stdout  # resumed, then shut down
    banger.run("vm", "delete", "nap")
