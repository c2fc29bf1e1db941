"""Bulk data through the guest agent vs ssh, same guest, same run: `banger vm exec NAME --
cat FILE` to /dev/null vs `ssh cat FILE`, and `banger vm cp` of the same file out of and into
the guest vs scp (same key, ciphers and options as `banger vm ssh`).

    python bench/throughput.py [--reps 3] [--mib 256]

Targets: each banger path >= 1.0x ssh's throughput (its time <= 1.0x ssh's). Needs root
(network namespaces)."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from common import (
    BangerEnv,
    compile_banger,
    ensure_test_image,
    make_env,
    report,
    temporary_netns,
    timed,
)

from banger.cli.sshexec import ssh_argv
from banger.client import Client
from banger.core.paths import paths_from_env

GUEST_FILE = "/root/big"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--mib", type=int, default=256)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/throughput.py needs root (network namespaces)")
    image = ensure_test_image()
    compile_banger()
    with temporary_netns() as ns, tempfile.TemporaryDirectory(prefix="bgtp-") as tmp:
        # A long boot_timeout: a loaded 2-core host boots a TCG guest slowly.
        env: BangerEnv = make_env(ns, image, "boot_timeout = 900\n")
        try:
            env.run("vm", "create", "--name", "bench", "--disk-size", "4G")
            env.run("vm", "exec", "bench", "--", "sh", "-c",
                    f"head -c {args.mib}M /dev/urandom > {GUEST_FILE} && sync", timeout=1800)
            access = Client(paths_from_env(env.env), autostart=False).vm_access("bench")
            ssh = ssh_argv(access, [], interactive=False)
            options, target = ssh[1:-1], ssh[-1]
            local = Path(tmp) / "big"
            cli = [sys.executable, "-m", "banger.cli", "vm"]

            def run(argv: list[str]) -> float:
                return timed(ns.exec_argv(["sh", "-c", shlex.join(argv) + " >/dev/null"]),
                             env.env)

            cases = {
                "ssh cat": lambda: run([*ssh, "cat", GUEST_FILE]),
                "vm exec cat": lambda: run([*cli, "exec", "bench", "--", "cat", GUEST_FILE]),
                "scp out": lambda: run(["scp", "-q", *options, f"{target}:{GUEST_FILE}",
                                        str(local)]),
                "vm cp out": lambda: run([*cli, "cp", f"bench:{GUEST_FILE}", str(local)]),
                "scp in": lambda: run(["scp", "-q", *options, str(local),
                                       f"{target}:/root/in"]),
                "vm cp in": lambda: run([*cli, "cp", str(local), "bench:/root/in"]),
            }
            # Untimed: the guest's page cache holds the file, the daemon's channel is open.
            cases["vm exec cat"]()
            samples: dict[str, list[float]] = {name: [] for name in cases}
            for rep in range(args.reps):
                names = list(cases) if rep % 2 == 0 else list(reversed(cases))
                for name in names:
                    samples[name].append(cases[name]())
                print(f"rep {rep}: " + "  ".join(f"{n} {samples[n][-1]:.2f}s" for n in cases),
                      flush=True)
            mib = args.mib
            for baseline, ours in (("ssh cat", "vm exec cat"), ("scp out", "vm cp out"),
                                   ("scp in", "vm cp in")):
                report(f"{baseline} ({mib} MiB)", samples[baseline])
                report(f"{ours} ({mib} MiB)", samples[ours], samples[baseline], 1.0)
        finally:
            env.shutdown()
            shutil.rmtree(env.root, ignore_errors=True)


if __name__ == "__main__":
    main()
