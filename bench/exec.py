"""Exec round trip: `banger vm exec NAME -- true` (the guest agent's channel) vs `banger vm
ssh NAME -- true` (a new ssh login each time), both as the CLI runs them, same guest, same
run; plus the same exec through the Python client (one process, no CLI start-up).

    python bench/exec.py [--reps 20]

Needs root (network namespaces)."""

from __future__ import annotations

import argparse
import os
import sys
import time

from common import (
    BangerEnv,
    compile_banger,
    ensure_test_image,
    make_env,
    report,
    temporary_netns,
    timed,
)

from banger.client import Client
from banger.core.paths import paths_from_env


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/exec.py needs root (network namespaces)")
    image = ensure_test_image()
    compile_banger()
    with temporary_netns() as ns:
        env: BangerEnv = make_env(ns, image)
        try:
            env.run("vm", "create", "--name", "bench")
            client = Client(paths_from_env(env.env), autostart=False)

            def cli(*words: str) -> float:
                return timed(ns.exec_argv([sys.executable, "-m", "banger.cli", "vm", *words,
                                           "bench", "--", "true"]), env.env)

            def sdk() -> float:
                started = time.perf_counter()
                client.exec_vm("bench", ["true"])
                return time.perf_counter() - started

            cli("exec")  # untimed: opens the daemon's channel to the agent
            cli("ssh")
            ssh_times: list[float] = []
            exec_times: list[float] = []
            for rep in range(args.reps):
                order = [("ssh", ssh_times), ("exec", exec_times)]
                if rep % 2:
                    order.reverse()
                for verb, samples in order:
                    samples.append(cli(verb))
            sdk_times = [sdk() for _ in range(args.reps)]
            report("banger vm ssh NAME -- true", ssh_times)
            report("banger vm exec NAME -- true", exec_times, ssh_times, target=0.15)
            report("Client.exec_vm(NAME, ['true'])", sdk_times, ssh_times)
        finally:
            env.shutdown()


if __name__ == "__main__":
    main()
