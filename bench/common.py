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
    "BangerEnv", "Netns", "ensure_test_image", "make_env", "report", "temporary_netns", "timed",
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
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started
