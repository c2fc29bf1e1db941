"""`vm stats` and the poller behind it, and `auto_stop_stale_after`, on one guest of an
installation whose poller runs every few seconds."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from tests.e2e.conftest import BANGER, BangerEnv

CONFIG = 'stats_poll_interval = "3s"\nauto_stop_stale_after = "20s"\n'


def test_stats_and_auto_stop_of_an_idle_vm(second_banger: Callable[..., BangerEnv]) -> None:
    env = second_banger(CONFIG)
    env.json("vm", "create", "--name", "idler")

    report = env.json("vm", "stats", "idler")
    assert report["state"] == "running" and report["interval"] == 3
    latest = report["samples"][-1]
    assert latest["host"]["rss_bytes"] > 50 * 1024**2
    assert latest["host"]["cpu_seconds"] > 0
    guest = latest["guest"]
    assert guest is not None, latest["guest_error"]
    assert guest["mem_total_bytes"] > guest["mem_used_bytes"] > 0
    assert {d["mount"] for d in guest["disks"]} == {"/", "/root"}
    assert guest["net_rx_bytes"] > 0 and guest["net_tx_bytes"] > 0
    text = env.run("vm", "stats", "idler").stdout
    for label in ("vmm cpu:", "vmm memory:", "guest memory:", "disk /root:", "network:",
                  "auto-stop after 20s"):
        assert label in text

    # An open ssh session keeps the VM alive past the idle limit...
    session = subprocess.Popen(
        env.netns.exec_argv([*BANGER, "vm", "ssh", "idler", "--", "sleep", "35"]),
        env=env.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        time.sleep(30)
        assert env.json("vm", "show", "idler")["state"] == "running"
        assert env.json("vm", "stats", "idler")["samples"][-1]["host"]["connections"] >= 1
    finally:
        session.wait(timeout=60)

    # ...and once it is gone and the guest idles, the daemon stops it.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if env.json("vm", "show", "idler")["state"] == "stopped":
            break
        time.sleep(2)
    assert env.json("vm", "show", "idler")["state"] == "stopped"
    assert "idle for" in (env.state_dir / "bangerd.log").read_text()
    assert env.json("vm", "stats", "idler")["samples"] == []
    env.run("vm", "delete", "idler")
