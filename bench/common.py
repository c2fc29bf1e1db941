"""Shared bench helpers: timing statistics and the same isolated environment the end-to-end
tests use (a network namespace of our own, a private banger installation)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.conftest import (
    BangerEnv,
    Netns,
    ensure_test_image,
    make_env,
    temporary_netns,
)

__all__ = [
    "BangerEnv", "Netns", "boot_to_ssh", "compile_banger", "ensure_test_image", "make_env",
    "report", "temporary_netns", "timed",
]


def report(label: str, samples: list[float], baseline: list[float] | None = None,
           target: float | None = None) -> None:
    line = (f"{label:<44} n={len(samples):<3} min={min(samples):8.3f}s "
            f"median={statistics.median(samples):8.3f}s")
    if baseline:
        ratio = statistics.median(samples) / statistics.median(baseline)
        line += f"  ratio={ratio:5.2f}x"
        if target is not None:
            line += f" (target <= {target:.2f}x: {'met' if ratio <= target else 'NOT met'})"
    print(line, flush=True)


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Seconds `argv` takes, its stdin /dev/null (an inherited pipe would be data for
    `banger vm exec` to forward) and its output discarded."""
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def compile_banger() -> None:
    """Byte-compile banger, as an installed package is: with PYTHONDONTWRITEBYTECODE set (or
    an unwritable checkout), every CLI start would otherwise compile its modules anew, which
    costs ~20 ms a run and is no part of what a user's `banger` costs."""
    import compileall

    import banger

    compileall.compile_dir(str(Path(banger.__file__).parent), quiet=1)


def boot_to_ssh(
    ns: Netns, qemu: list[str], ssh: list[str], label: str, limit: float | None = None
) -> float:
    """Start a hand-built QEMU command line in `ns` and poll `ssh` (a full ssh argv running
    `true`) until it succeeds; seconds from start to ssh. The VM is killed afterwards."""
    started = time.monotonic()
    proc = subprocess.Popen(ns.exec_argv(qemu), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while subprocess.run(ns.exec_argv(ssh), capture_output=True).returncode != 0:
            if proc.poll() is not None:
                raise RuntimeError(f"{label} qemu exited during boot")
            if limit is not None and time.monotonic() - started > limit:
                raise RuntimeError(f"{label} guest not reachable after {limit:.0f}s")
            time.sleep(0.25)
        return time.monotonic() - started
    finally:
        proc.kill()
        proc.wait()
