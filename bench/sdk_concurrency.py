"""20 concurrent `sb.exec` calls on one VM (threads sharing one Sandbox): all must complete
with their own, unmixed output; prints the wall time of the batch against one exec alone
and against the same 20 run one after the other, on the same VM in the same run.

    python bench/sdk_concurrency.py [--reps 5] [--calls 20] [--lines 200]

Needs root (network namespaces)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from common import BangerEnv, ensure_test_image, make_env, report, temporary_netns

from banger.client import Client
from banger.core.paths import paths_from_env
from banger.sdk.sandbox import Sandbox


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--lines", type=int, default=200)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/sdk_concurrency.py needs root (network namespaces)")
    image = ensure_test_image()
    with temporary_netns() as ns:
        env: BangerEnv = make_env(ns, image)
        try:
            client = Client(paths_from_env(env.env), autostart=False)
            with Sandbox.create(image="debian-bookworm", name="bench", client=client) as sb:

                def one(n: int) -> None:
                    result = sb.exec(f"for i in $(seq {args.lines}); do echo {n}-$i; done")
                    expected = [f"{n}-{i}" for i in range(1, args.lines + 1)]
                    if result.exit_code != 0 or result.stdout.splitlines() != expected:
                        raise SystemExit(f"exec {n}: wrong output or status {result}")

                def timed(run: Callable[[], None]) -> float:
                    started = time.perf_counter()
                    run()
                    return time.perf_counter() - started

                def concurrent() -> None:
                    with ThreadPoolExecutor(args.calls) as pool:
                        list(pool.map(one, range(args.calls)))

                def sequential() -> None:
                    for n in range(args.calls):
                        one(n)

                one(0)  # untimed: opens the daemon's channel to the agent
                single = [timed(lambda: one(0)) for _ in range(args.reps)]
                serial = [timed(sequential) for _ in range(args.reps)]
                batch = [timed(concurrent) for _ in range(args.reps)]
                report("one sb.exec", single)
                report(f"{args.calls} sb.exec one after the other", serial)
                report(f"{args.calls} concurrent sb.exec (threads)", batch, serial)
                print(f"all {args.calls * args.reps * 2 + args.reps + 1} execs completed "
                      "with correct, unmixed output", flush=True)
        finally:
            env.shutdown()


if __name__ == "__main__":
    main()
