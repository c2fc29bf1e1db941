"""Warm templates: `banger vm run --rm -- true` from the image's warm template vs a cold boot
(`--cold`) of the same image, interleaved in one run; and host memory (PSS) of N idle VMs
restored from the template vs N idle cold-booted ones.

    python bench/warm.py [--reps 3] [--clones 10] [--skip-memory]   (--reps 0: memory only)
                         [--firecracker-standin]

--firecracker-standin: the Firecracker backend, through the test stand-in
(tests/support/firecracker_standin.py: its guest is QEMU under TCG, its RAM mapped as Firecracker
maps it); a VM's memory is then the stand-in's and its QEMU's.

Targets: warm <= 0.10x cold; PSS of the warm clones <= 0.35x the cold ones. Needs root."""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import BangerEnv, compile_banger, ensure_test_image, make_env, report, temporary_netns

# A long boot_timeout: the cold fleet boots next to the idle VMs booted before it.
CONFIG = ('warm_start = true\nboot_timeout = 900\n'
          '[vm_defaults]\nvcpu = 2\nmemory_mib = 1024\n')
# Cold boots run this many at a time: all ten at once would take each past boot_timeout
# on a small machine under TCG.
COLD_PARALLEL = 2


def timed_run(env: BangerEnv, *args: str) -> float:
    started = time.monotonic()
    env.run(*args, timeout=1800)
    return time.monotonic() - started


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages count 1/N towards each of the N processes."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise RuntimeError(f"no Pss for {pid}")


def with_children(pid: int) -> list[int]:
    """The VMM and the processes it started (the stand-in's QEMU)."""
    children = [
        int(child) for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]
    return [pid, *(p for child in children for p in with_children(child))]


def fleet_pss(env: BangerEnv, names: list[str], settle: float) -> int:
    time.sleep(settle)  # idle: let boot-time work finish in the guests
    pids = [env.json("vm", "show", name)["pid"] for name in names]
    return sum(pss_kib(p) for pid in pids for p in with_children(pid))


def make_fleet(env: BangerEnv, prefix: str, count: int, cold: bool, parallel: int) -> list[str]:
    names = [f"{prefix}{i}" for i in range(count)]
    extra = ["--cold"] if cold else []

    def create(name: str) -> None:
        env.run("vm", "create", "--name", name, *extra, timeout=1800)

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(create, names))
    return names


def delete_fleet(env: BangerEnv, names: list[str]) -> None:
    for name in names:
        env.run("vm", "delete", "--force", name, check=False, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--clones", type=int, default=10)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--settle", type=float, default=20.0,
                        help="Seconds the fleet idles before its memory is measured.")
    parser.add_argument("--firecracker-standin", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/warm.py needs root (network namespaces)")
    image = ensure_test_image()
    compile_banger()
    config = CONFIG
    if args.firecracker_standin:
        from tests.support.firecracker_standin import write_wrapper

        binary = write_wrapper(Path(tempfile.mkdtemp(prefix="bgfc-")))
        config = f'backend = "firecracker"\nfirecracker_bin = "{binary}"\n{config}'
        atexit.register(shutil.rmtree, binary.parent, True)
    with temporary_netns() as ns:
        env = make_env(ns, image, config)
        try:
            build = timed_run(env, "image", "warm", "--force", "debian-bookworm")
            print(f"template made in {build:.1f}s "
                  f"({env.json('image', 'show', 'debian-bookworm')['template']})", flush=True)
            cold, warm = [], []
            for rep in range(args.reps):  # interleaved: load changes hit both alike
                cold.append(timed_run(env, "vm", "run", "--cold", "--rm", "--", "true"))
                warm.append(timed_run(env, "vm", "run", "--rm", "--", "true"))
                print(f"rep {rep}: cold {cold[-1]:.2f}s warm {warm[-1]:.2f}s "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
            if args.reps:
                report("banger vm run --cold --rm -- true", cold)
                report("banger vm run --rm -- true (warm)", warm, cold, 0.10)
            if args.skip_memory:
                return
            clones = make_fleet(env, "w", args.clones, cold=False, parallel=1)
            warm_pss = fleet_pss(env, clones, args.settle)
            print(f"PSS of {args.clones} idle warm VMs: {warm_pss / 1024:.0f} MiB", flush=True)
            delete_fleet(env, clones)
            booted = make_fleet(env, "c", args.clones, cold=True, parallel=COLD_PARALLEL)
            cold_pss = fleet_pss(env, booted, args.settle)
            delete_fleet(env, booted)
            ratio = warm_pss / cold_pss
            print(f"PSS of {args.clones} idle VMs: warm {warm_pss / 1024:.0f} MiB, "
                  f"cold {cold_pss / 1024:.0f} MiB, ratio={ratio:.2f}x "
                  f"(target <= 0.35x: {'met' if ratio <= 0.35 else 'NOT met'})", flush=True)
        finally:
            env.shutdown()
            shutil.rmtree(env.root, ignore_errors=True)
    subprocess.run(["sync"], check=False)


if __name__ == "__main__":
    main()
