"""Doctor and boot reliability on this host."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys

from tests.e2e.conftest import BangerEnv


def test_doctor_explains_the_accelerator_choice(banger: BangerEnv) -> None:
    proc = banger.run("doctor")
    assert proc.returncode == 0
    accel_line = next(line for line in proc.stdout.splitlines() if "accel:" in line)
    if os.path.exists("/sys/module/kvm_pvm"):
        assert "tcg" in accel_line and "pvm" in accel_line
    checks = {c["name"]: c for c in banger.json("doctor")}
    for name in ("qemu", "mkfs.ext4", "mmdebstrap", "free disk", "default image", "vm defaults"):
        assert name in checks
    assert checks["default image"]["status"] == "ok"


def test_concurrent_boots_under_cpu_load_all_reach_ssh(banger: BangerEnv) -> None:
    """TCG boots used to hang at TSC calibration on a busy host; tsc_early_khz fixes it."""
    hog = subprocess.Popen([sys.executable, "-c", "import time\nend=time.time()+240\n"
                            "while time.time()<end: pass"])
    try:
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            results = list(pool.map(
                lambda i: banger.run("vm", "run", "--rm", "--name", f"load{i}", "--",
                                     "cat", "/proc/cmdline", check=False),
                range(3),
            ))
    finally:
        hog.kill()
        hog.wait()
    for proc in results:
        assert proc.returncode == 0, proc.stderr
        assert "tsc_early_khz=" in proc.stdout or "kvm" in banger.json("daemon", "status")["accel"]
