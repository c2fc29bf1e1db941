"""Boot-to-ssh: a plain QEMU command line vs `banger vm run --rm -- true`, same image, same
run; and CLI latency: `banger vm list` vs `python3 -c pass`.

    python bench/boot.py [--reps 3] [--cli-only]

Targets: banger <= 1.10x raw QEMU; `vm list` <= 4x `python3 -c pass`. Needs root."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    BangerEnv,
    Netns,
    boot_to_ssh,
    ensure_test_image,
    make_env,
    report,
    temporary_netns,
    timed,
)

import banger
from banger.core.guest import SEED_DIR, BootIdentity, kernel_cmdline
from banger.host import hostinfo
from banger.host.vmm.base import LaunchSpec
from banger.host.vmm.qemu import qemu_argv

GUEST_IP = "172.16.9.2"


def raw_qemu_boot(ns: Netns, image: dict[str, str], workdir: Path) -> float:
    """Boot the image with a hand-built QEMU command line and poll ssh until `true` runs."""
    shutil.rmtree(workdir, ignore_errors=True)
    staging = workdir / "staging"
    (staging / ".ssh").mkdir(parents=True)
    (staging / SEED_DIR).mkdir()
    key = workdir / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    hostkey = staging / SEED_DIR / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)],
                   check=True)
    shutil.copy(f"{key}.pub", staging / ".ssh/authorized_keys")
    known = workdir / "known_hosts"
    known.write_text(f"{GUEST_IP} {Path(f'{hostkey}.pub').read_text()}")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                    image["rootfs"], str(workdir / "root.qcow2")], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-L", "banger-work", "-d", str(staging),
                    str(workdir / "work.ext4"), "8G"], check=True)
    accel = hostinfo.choose_accel("auto", hostinfo.kvm_facts()).accel
    spec = LaunchSpec(
        vm_id="bench", name="bench", vcpu=2, memory_mib=1024, kernel=Path(image["kernel"]),
        initrd=Path(image["initrd"]),
        cmdline=kernel_cmdline(
            BootIdentity(GUEST_IP, 24, "172.16.9.1", "172.16.9.1", "bench"),
            tsc_khz=hostinfo.tsc_khz() if accel == "tcg" else None,
        ),
        root_disk=workdir / "root.qcow2", work_disk=workdir / "work.ext4", tap="bgbench0",
        mac="02:00:00:00:00:09", vm_dir=workdir, accel=accel,
    )
    ssh = ["ssh", "-F", "none", "-i", str(key), "-o", f"UserKnownHostsFile={known}",
           "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=1", "-o", "BatchMode=yes",
           f"root@{GUEST_IP}", "true"]
    return boot_to_ssh(ns, qemu_argv("qemu-system-x86_64", spec), ssh, "raw")


def cli_latency(env: BangerEnv) -> None:
    """`banger vm list` against a running daemon vs `python3 -c pass`, same interpreter."""
    cli = [sys.executable, "-m", "banger.cli", "vm", "list"]
    entry = shutil.which("banger", path=str(Path(sys.executable).parent)) or ""
    if entry:
        cli = [entry, "vm", "list"]
    env.run("vm", "list")  # daemon up before timing
    # Bytecode as an installed package has it: with PYTHONDONTWRITEBYTECODE set (or a
    # read-only tree) every call would compile banger's modules again.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(banger.__file__).parent)],
                   check=True, stdout=subprocess.DEVNULL)
    baseline: list[float] = []
    listing: list[float] = []
    for _ in range(20):  # interleaved: a load change on the machine hits both alike
        baseline.append(timed([sys.executable, "-c", "pass"]))
        listing.append(timed(cli, env.env))
    report("python3 -c pass", baseline)
    report("banger vm list", listing, baseline, 4.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--cli-only", action="store_true",
                        help="Only the CLI latency part (no guest boots, no test image).")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/boot.py needs root (network namespaces)")
    if args.cli_only:
        with temporary_netns() as ns:
            env = make_env(ns, {}, register=False)
            try:
                cli_latency(env)
            finally:
                env.shutdown()
                shutil.rmtree(env.root, ignore_errors=True)
        return
    image = ensure_test_image()
    with temporary_netns() as ns, tempfile.TemporaryDirectory(prefix="bgbench-") as tmp:
        ns_sh = ns.exec_argv(["sh", "-c",
            "ip link add bgbench type bridge && ip addr add 172.16.9.1/24 dev bgbench && "
            "ip link set bgbench up && ip tuntap add dev bgbench0 mode tap && "
            "ip link set bgbench0 master bgbench && ip link set bgbench0 up"])
        subprocess.run(ns_sh, check=True)
        env = make_env(ns, image)
        try:
            env.run("vm", "list")  # daemon up before timing
            raw, ours = [], []
            for rep in range(args.reps):
                raw.append(raw_qemu_boot(ns, image, Path(tmp) / "raw"))
                started = time.monotonic()
                env.run("vm", "run", "--rm", "--name", f"bench{rep}", "--", "true")
                ours.append(time.monotonic() - started)
                print(f"rep {rep}: raw {raw[-1]:.2f}s banger {ours[-1]:.2f}s", flush=True)
            report("raw qemu boot-to-ssh", raw)
            report("banger vm run --rm -- true", ours, raw, 1.10)
            cli_latency(env)
        finally:
            env.shutdown()
            shutil.rmtree(env.root, ignore_errors=True)


if __name__ == "__main__":
    main()
