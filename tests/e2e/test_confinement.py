"""The VMM runs confined: as an unprivileged uid of its own per VM, in QEMU's seccomp
sandbox, in a cgroup of its own with memory and thread ceilings; a guest cannot grow its
console log or the daemon's memory without bound."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from banger.core.confine import (
    DEFAULT_VMM_UIDS,
    MIB,
    PIDS_BASE,
    QEMU_OVERHEAD_MIB,
    TCG_CACHE_MIB,
    uid_range,
)
from banger.host.vmmuser import REGISTRY, host_ids_in
from tests.e2e.conftest import BangerEnv

CGROUPS = Path("/sys/fs/cgroup")
CONSOLE_MAX = 256 * 1024
# Flood a serial port from a detached shell: the ssh session that starts it ends at once.
CONSOLE_FLOOD = "nohup sh -c 'while :; do cat /etc/services; done > /dev/ttyS0' >/dev/null 2>&1 &"

def _has_memory_cgroups() -> bool:
    if (CGROUPS / "memory" / "memory.limit_in_bytes").exists():
        return True
    try:
        return "memory" in (CGROUPS / "cgroup.controllers").read_text().split()
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _has_memory_cgroups(), reason="needs a memory cgroup")


@pytest.fixture(scope="module")
def env(second_banger_module: Callable[..., BangerEnv]) -> Iterator[BangerEnv]:
    env = second_banger_module(f'console_log_max_size = "{CONSOLE_MAX // 1024}K"\n')
    env.run("vm", "create", "--name", "boxed", "--memory", "512")
    yield env
    env.run("vm", "delete", "--force", "boxed", check=False)
    env.run("vm", "delete", "--force", "neighbour", check=False)


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line)


def _cgroup_dir(pid: int, controller: str) -> Path:
    """The process's cgroup directory for `controller`: v1's own hierarchy, else v2's."""
    entries = [line.split(":", 2) for line in Path(f"/proc/{pid}/cgroup").read_text().split("\n")
               if line]
    for _, controllers, path in entries:
        if controller in controllers.split(","):
            return CGROUPS / controller / path.lstrip("/")
    return CGROUPS / next(path for _, controllers, path in entries if not controllers).lstrip("/")


def _ids(pid: int) -> tuple[list[str], list[str]]:
    status = _status(pid)
    return status["Uid"].split(), status["Gid"].split()


def test_qemu_runs_as_a_uid_of_its_own_in_its_sandbox_and_cgroup(env: BangerEnv) -> None:
    vm = env.json("vm", "show", "boxed")
    pid = vm["pid"]
    status = _status(pid)
    uids, gids = _ids(pid)
    uid = int(uids[0])
    assert uid in uid_range(DEFAULT_VMM_UIDS) and host_ids_in(range(uid, uid + 1)) == []
    assert uids == [str(uid)] * 4 and gids == [str(uid)] * 4
    assert status["CapEff"].strip() == "0000000000000000"
    assert status["Seccomp"].strip() == "2"
    assert status["NoNewPrivs"].strip() == "1"

    memory = _cgroup_dir(pid, "memory")
    assert memory.name == f"vm-{vm['id']}"
    limit_file = "memory.limit_in_bytes" if (memory / "memory.limit_in_bytes").exists() \
        else "memory.max"
    tcg = vm["accel"] == "tcg"
    expected = (512 + QEMU_OVERHEAD_MIB + (TCG_CACHE_MIB if tcg else 0)) * MIB
    assert int((memory / limit_file).read_text()) == expected
    pids = _cgroup_dir(pid, "pids")
    assert pids.name == f"vm-{vm['id']}"
    assert int((pids / "pids.max").read_text()) == PIDS_BASE + vm["spec"]["vcpu"]

    stats = env.json("vm", "stats", "boxed")
    cgroup = stats["samples"][-1]["host"]["cgroup"]
    assert cgroup["memory_limit"] == expected
    assert 0 < cgroup["memory_bytes"] <= expected


def test_two_vms_have_vmms_of_different_uids_and_a_deleted_vm_gives_its_back(
    env: BangerEnv,
) -> None:
    env.run("vm", "create", "--name", "neighbour", "--memory", "256")
    mine = _ids(env.json("vm", "show", "boxed")["pid"])
    theirs = _ids(env.json("vm", "show", "neighbour")["pid"])
    # One VMM cannot signal, trace or open the files of the other: nothing is shared.
    assert mine[0][0] != theirs[0][0] and mine[1][0] != theirs[1][0]
    neighbour = env.json("vm", "show", "neighbour")
    env.run("vm", "delete", "--force", "neighbour")
    claims = {p.read_text() for p in REGISTRY.iterdir() if p.name.isdigit()}
    assert neighbour["dir"] not in claims


def test_a_guest_flooding_its_console_leaves_a_bounded_log(env: BangerEnv) -> None:
    vm = env.json("vm", "show", "boxed")
    console = Path(vm["dir"]) / "console.log"
    env.run("vm", "ssh", "boxed", "--", "sh", "-c", CONSOLE_FLOOD)
    try:
        dropped = Path(f"{console}.dropped")
        deadline = time.monotonic() + 240
        largest = 0
        while time.monotonic() < deadline:
            largest = max(largest, console.stat().st_size)
            if dropped.exists() and int(dropped.read_text()) > 4 * CONSOLE_MAX:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the guest wrote too slowly to test the bound ({largest} bytes)")
        # Cut back every second: over the bound by at most what the guest writes in one.
        assert largest <= 2 * CONSOLE_MAX
        logs = env.run("vm", "logs", "boxed").stdout
        assert len(logs.encode()) <= 2 * CONSOLE_MAX
    finally:
        env.run("vm", "ssh", "boxed", "--", "pkill", "-f", "ttyS0", check=False)


def _rss_kib(pid: int) -> int:
    return int(_status(pid)["VmRSS"].split()[0])


def test_a_guest_shell_that_floods_does_not_grow_the_daemon(env: BangerEnv) -> None:
    daemon = env.daemon_pid()
    assert daemon is not None
    # Every ssh session of root now starts with endless output (sshd runs ~/.ssh/rc first).
    env.run("vm", "ssh", "boxed", "--", "sh", "-c",
            "printf 'exec yes flooding\\n' > /root/.ssh/rc")
    before = _rss_kib(daemon)
    errors = [env.json("vm", "stats", "boxed")["samples"][-1]["guest_error"] for _ in range(4)]
    assert sum("256 KiB" in error for error in errors) >= 3, errors
    assert _rss_kib(daemon) - before < 32 * 1024
