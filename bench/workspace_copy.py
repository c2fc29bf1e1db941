"""Workspace copy: `banger vm workspace prepare` of a repository with 20,000 small files and
one 200 MiB file vs a bare `tar c | ssh tar x` of exactly the same file set (same ssh options,
same guest), measured in the same run; and the same copy through the guest agent (as `vm run
./repo -- CMD` makes it), from the client in this process (no CLI start-up, like the bare
stream).

    python bench/workspace_copy.py [--reps 5] [--files 20000] [--big-mib 200]

Target: workspace copy <= 1.20x the bare stream. Needs root (network namespaces)."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
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
from banger.client.workspace import find_repo, list_files, prepare_workspace
from banger.core.paths import paths_from_env

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.test",
    "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.test",
}


def make_repo(root: Path, files: int, big_mib: int) -> None:
    root.mkdir()
    env = {**os.environ, **GIT_ENV}
    subprocess.run(["git", "init", "-q", str(root)], check=True, env=env)
    per_dir = 100
    for index in range(files):
        directory = root / "src" / f"d{index // per_dir:04d}"
        if index % per_dir == 0:
            directory.mkdir(parents=True)
        (directory / f"f{index:05d}.txt").write_text(f"file {index}\n" * (1 + index % 40))
    with open(root / "big.bin", "wb") as f:
        for _ in range(big_mib):
            f.write(os.urandom(1 << 20))
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(root), "commit", "-qm", "bench"], check=True, env=env)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--big-mib", type=int, default=200)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/workspace_copy.py needs root (network namespaces)")
    image = ensure_test_image()
    compile_banger()
    with temporary_netns() as ns, tempfile.TemporaryDirectory(prefix="bgws-") as tmp:
        repo = Path(tmp) / "repo"
        started = time.monotonic()
        make_repo(repo, args.files, args.big_mib)
        made = time.monotonic() - started
        started = time.monotonic()
        selection = list_files(repo)
        selected = time.monotonic() - started
        listing = Path(tmp) / "files.list"
        listing.write_bytes(b"".join(b"./" + os.fsencode(p) + b"\0" for p in selection.paths))
        print(f"repository: {selection.files} files + .git, "
              f"{selection.bytes / (1 << 20):.0f} MiB in the working tree (made in {made:.1f}s; "
              f"the workspace's file selection takes {selected:.2f}s of each copy)", flush=True)
        env: BangerEnv = make_env(ns, image)
        try:
            env.run("vm", "create", "--name", "bench", "--disk-size", "16G")
            client = Client(paths_from_env(env.env), autostart=False)
            access = client.vm_access("bench")

            def guest(script: str) -> list[str]:
                return ns.exec_argv(ssh_argv(access, ["sh", "-c", script], interactive=False))

            def bare(rep: int) -> float:
                receive = guest(f"mkdir -p /root/bare{rep} && tar -x -f - -C /root/bare{rep}")
                stream = f"tar -C {repo} -c -f - --null -T {listing} | {shlex.join(receive)}"
                return timed(["sh", "-c", stream])

            def workspace(rep: int) -> float:
                return timed(ns.exec_argv([
                    sys.executable, "-m", "banger.cli", "vm", "workspace", "prepare", "bench",
                    str(repo), "--guest-path", f"/root/ws{rep}",
                ]), env.env)

            def agent(rep: int) -> float:
                started = time.perf_counter()
                prepare_workspace(client, "bench", repo, None, guest_path=f"/root/ag{rep}",
                                  repo=find_repo(repo))
                return time.perf_counter() - started

            def clean() -> None:
                subprocess.run(guest("rm -rf /root/bare* /root/ws* /root/ag* && sync"),
                               check=True)

            # One untimed round first: caches on both sides, and the guest's background work
            # on its fresh work disk (ext4 lazy inode-table init), settle before timing.
            clean()
            bare(99)
            clean()
            workspace(99)
            clean()
            agent(99)
            bare_times: list[float] = []
            workspace_times: list[float] = []
            agent_times: list[float] = []
            for rep in range(args.reps):
                order = [(bare, bare_times), (workspace, workspace_times), (agent, agent_times)]
                if rep % 2:
                    order.reverse()
                for run, samples in order:
                    clean()
                    samples.append(run(rep))
                print(f"rep {rep}: tar|ssh {bare_times[-1]:.2f}s  "
                      f"workspace prepare {workspace_times[-1]:.2f}s  "
                      f"through the agent {agent_times[-1]:.2f}s", flush=True)
            report("tar c | ssh tar x (same files)", bare_times)
            report("banger vm workspace prepare", workspace_times, bare_times, 1.20)
            report("the copy through the agent (client)", agent_times, bare_times, 1.0)
        finally:
            env.shutdown()
            subprocess.run(["rm", "-rf", str(env.root)], check=False)


if __name__ == "__main__":
    main()
