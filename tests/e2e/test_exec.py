"""`banger vm exec` end to end: commands in a cold-booted guest through banger-agent's exec
channel, without ssh, and `banger vm cp` (a VM restored from a warm template:
test_warm.py)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import BANGER, BangerEnv

pytestmark = pytest.mark.e2e
VM = "ex"


@pytest.fixture(scope="module")
def vm(banger: BangerEnv) -> Iterator[str]:
    with banger.vm(VM) as name:
        yield name


def exec_bytes(env: BangerEnv, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        env.netns.exec_argv([*BANGER, "vm", "exec", *args]), env=env.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )


def test_stdout_stderr_and_exit_codes(banger: BangerEnv, vm: str) -> None:
    proc = banger.run("vm", "exec", vm, "--", "sh", "-c", "echo out; echo err >&2; exit 3",
                      check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out\n", "err\n")
    assert banger.run("vm", "exec", vm, "--", "true", check=False).returncode == 0
    missing = banger.run("vm", "exec", vm, "--", "no-such-command", check=False)
    assert missing.returncode == 127
    assert "no-such-command: command not found" in missing.stderr


def test_env_cwd_and_stdin(banger: BangerEnv, vm: str) -> None:
    proc = banger.run("vm", "exec", vm, "--env", "GREETING=hi there", "--cwd", "/tmp", "--",
                      "sh", "-c", 'echo "$GREETING"; pwd; cat', input="from stdin")
    assert proc.stdout == "hi there\n/tmp\nfrom stdin"


def test_concurrent_execs_do_not_mix_their_output(banger: BangerEnv, vm: str) -> None:
    procs = [
        exec_bytes(banger, vm, "--", "sh", "-c",
                   f"for i in $(seq 200); do echo line-{n}-$i; done")
        for n in range(4)
    ]
    for n, proc in enumerate(procs):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert out.decode().splitlines() == [f"line-{n}-{i}" for i in range(1, 201)]


def test_large_output_is_streamed_intact(banger: BangerEnv, vm: str) -> None:
    size = 20 * 1024 * 1024
    proc = exec_bytes(banger, vm, "--", "sh", "-c",
                      f"head -c {size} /dev/urandom > /tmp/big; sha256sum /tmp/big >&2; "
                      "cat /tmp/big; rm /tmp/big")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert len(out) == size
    assert err.split()[0].decode() == hashlib.sha256(out).hexdigest()


def test_cp_into_the_guest_and_back(banger: BangerEnv, vm: str, tmp_path: Path) -> None:
    local = tmp_path / "data.bin"
    local.write_bytes(os.urandom(300_000))
    local.chmod(0o640)
    banger.run("vm", "cp", str(local), f"{vm}:/root/")
    listed = banger.run("vm", "exec", vm, "--", "stat", "-c", "%a %s", "/root/data.bin").stdout
    assert listed.split() == ["640", "300000"]
    banger.run("vm", "cp", f"{vm}:/root/data.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == local.read_bytes()


def test_cp_of_a_missing_guest_path_names_it(banger: BangerEnv, vm: str, tmp_path: Path) -> None:
    proc = banger.run("vm", "cp", f"{vm}:/no/such/file", str(tmp_path / "x"), check=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == (
        "error: cannot stat /no/such/file: No such file or directory"
    )


def test_a_stopped_vm_is_one_line_telling_to_start_it(banger: BangerEnv, vm: str) -> None:
    banger.run("vm", "stop", vm)
    proc = banger.run("vm", "exec", vm, "--", "true", check=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"error: VM {vm!r} is not running (stopped)", f"hint: banger vm start {vm}",
    ]
