"""`banger vm exec` end to end: commands in a cold-booted guest through banger-agent's exec
channel, without ssh (a VM restored from a warm template: test_warm.py)."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import BANGER, BangerEnv

pytestmark = pytest.mark.e2e
VM = "ex"


@pytest.fixture(scope="module")
def vm(banger: BangerEnv) -> Iterator[str]:
    banger.run("vm", "create", "--name", VM)
    try:
        yield VM
    finally:
        banger.run("vm", "delete", "--force", VM, check=False)


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


def test_a_stopped_vm_is_one_line_telling_to_start_it(banger: BangerEnv, vm: str) -> None:
    banger.run("vm", "stop", vm)
    proc = banger.run("vm", "exec", vm, "--", "true", check=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"error: VM {vm!r} is not running (stopped)", f"hint: banger vm start {vm}",
    ]
