"""The E2B endpoint's overhead: `Sandbox.create()` + `commands.run("true")` + `kill()`
through the unmodified e2b SDK, against banger's own Client doing the same
(`create_vm` + `exec_vm(["true"])` + `delete_vm`), same daemon, warm template, same run.
Target: the SDK's median at most 1.2x the Client's.

    python bench/e2b.py [--reps 10]

Needs root (network namespaces) and the e2b SDK (in the test dependencies)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from common import BangerEnv, ensure_test_image, make_env, report, temporary_netns

from banger.client import Client
from banger.core.paths import paths_from_env

# Runs inside the namespace (the endpoint listens on its loopback): one timed round per line.
SDK_ROUNDS = """
import json, sys, time
from e2b import Sandbox
for _ in range(int(sys.argv[1])):
    started = time.perf_counter()
    sandbox = Sandbox.create()
    sandbox.commands.run("true")
    sandbox.kill()
    print(json.dumps(time.perf_counter() - started), flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/e2b.py needs root (network namespaces)")
    image = ensure_test_image()
    with temporary_netns() as ns:
        env: BangerEnv = make_env(ns, image, "warm_start = true\n")
        try:
            env.run("image", "warm", "debian-bookworm", timeout=900)
            env.env.update(env.json("e2b", "env", "--json"))
            client = Client(paths_from_env(env.env), autostart=False)

            def banger_round(index: int) -> float:
                started = time.perf_counter()
                client.create_vm(name=f"bench-{index}")
                client.exec_vm(f"bench-{index}", ["true"])
                client.delete_vm(f"bench-{index}", force=True)
                return time.perf_counter() - started

            def sdk_rounds(count: int) -> list[float]:
                out = subprocess.run(
                    ns.exec_argv([sys.executable, "-c", SDK_ROUNDS, str(count)]), env=env.env,
                    check=True, capture_output=True, text=True,
                ).stdout
                return [float(json.loads(line)) for line in out.splitlines()]

            banger_round(-1)  # untimed: the first clone and channel open
            sdk_rounds(1)
            banger_times: list[float] = []
            sdk_times: list[float] = []
            for rep in range(args.reps):
                order = [("banger", banger_times), ("sdk", sdk_times)]
                if rep % 2:
                    order.reverse()
                for who, samples in order:
                    samples += [banger_round(rep)] if who == "banger" else sdk_rounds(1)
            report("Client create_vm + exec_vm + delete_vm", banger_times)
            report("e2b Sandbox.create + run('true') + kill", sdk_times, banger_times, 1.2)
        finally:
            env.shutdown()


if __name__ == "__main__":
    main()
