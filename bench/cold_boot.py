"""Cold boot-to-ssh: a STOCK Debian rootfs (same package list as banger's image, none of
banger's boot trimming, the stock initrd) booted with a plain QEMU command line and a static
IP, vs a cold `banger vm run --rm -- true`, in the same run.

    python bench/cold_boot.py [--reps 3]

Target (issue 8): banger <= 0.80x the stock boot. Needs root. The stock image is built once
with mmdebstrap from the host's apt sources and cached under /var/tmp."""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Netns, boot_to_ssh, ensure_test_image, make_env, report, temporary_netns

from banger.core.imagerecipe import PACKAGES, image_size_bytes
from banger.host import hostinfo
from banger.host.aptconfig import host_apt_sources
from banger.host.imagetree import find_kernel, tree_size_bytes
from banger.host.vmm.base import LaunchSpec
from banger.host.vmm.qemu import qemu_argv

SUITE = "bookworm"
GUEST_IP = "172.16.9.2"
GATEWAY = "172.16.9.1"
STOCK_CACHE = Path(os.environ.get("BANGER_STOCK_IMAGE_CACHE", "/var/tmp/banger-stock-image"))
TARGET = 0.80

# What a user would add to a stock rootfs to reach it at all: a static address for the NIC
# (networkd is in systemd, just not enabled by default) and a root key.
STOCK_NETWORK = f"""\
[Match]
Type=ether

[Network]
Address={GUEST_IP}/24
Gateway={GATEWAY}
"""


def stock_image() -> Path:
    """Build (once) and return the directory with the stock rootfs, kernel, initrd, keys."""
    key = hashlib.sha256("\n".join([SUITE, *PACKAGES]).encode()).hexdigest()[:12]
    cache = STOCK_CACHE / key
    STOCK_CACHE.mkdir(parents=True, exist_ok=True)
    with open(STOCK_CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; the others wait and reuse it
        if not cache.exists():
            staging = cache.with_name(key + ".tmp")
            shutil.rmtree(staging, ignore_errors=True)
            _build_stock(staging)
            staging.rename(cache)
    return cache


def _build_stock(out: Path) -> None:
    out.mkdir(parents=True)
    tree = out / "tree"
    print(f"building the stock image in {out} (mmdebstrap, a few minutes)", flush=True)
    subprocess.run(
        ["mmdebstrap", "--variant=apt", "--mode=unshare", "--format=directory",
         "--include=" + ",".join(PACKAGES), SUITE, str(tree),
         *host_apt_sources(SUITE, None)],
        check=True, stdout=subprocess.DEVNULL,
    )
    client = out / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(client)],
                   check=True)
    (tree / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
    shutil.copy(f"{client}.pub", tree / "root/.ssh/authorized_keys")
    (tree / "etc/systemd/network/10-bench.network").write_text(STOCK_NETWORK)
    wants = tree / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "systemd-networkd.service").symlink_to("/lib/systemd/system/systemd-networkd.service")
    (tree / "etc/hostname").write_text("stock\n")
    shutil.copy(tree / "etc/ssh/ssh_host_ed25519_key.pub", out / "host_key.pub")
    _, vmlinuz, initrd = find_kernel(tree)
    shutil.copy(vmlinuz, out / "vmlinuz")
    shutil.copy(initrd, out / "initrd.img")
    size = image_size_bytes(tree_size_bytes(tree))
    subprocess.run(["mkfs.ext4", "-F", "-q", "-d", str(tree), str(out / "rootfs.ext4"),
                    f"{size // 1024}k"], check=True, stdout=subprocess.DEVNULL)
    shutil.rmtree(tree)


def stock_boot(ns: Netns, stock: Path, workdir: Path) -> float:
    """Plain QEMU (same machine type and size as banger's) on the stock image; poll ssh."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    known = workdir / "known_hosts"
    known.write_text(f"{GUEST_IP} {(stock / 'host_key.pub').read_text()}")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                    str(stock / "rootfs.ext4"), str(workdir / "root.qcow2")], check=True)
    subprocess.run(["truncate", "-s", "64M", str(workdir / "work.raw")], check=True)
    accel = hostinfo.choose_accel("auto", hostinfo.kvm_facts()).accel
    tsc = hostinfo.tsc_khz() if accel == "tcg" else None
    # Only what any Debian guest needs on this machine: console, root, and (under TCG) the
    # TSC rate so calibration does not hang. No banger trimming.
    cmdline = "console=ttyS0 root=/dev/vda rw" + (f" tsc_early_khz={tsc}" if tsc else "")
    spec = LaunchSpec(
        vm_id="stock", name="stock", vcpu=2, memory_mib=1024, kernel=stock / "vmlinuz",
        initrd=stock / "initrd.img", cmdline=cmdline,
        root_disk=workdir / "root.qcow2", work_disk=workdir / "work.raw", tap="bgbench0",
        mac="02:00:00:00:00:09", vm_dir=workdir, accel=accel,
    )
    ssh = ["ssh", "-F", "none", "-i", str(stock / "id"), "-o", f"UserKnownHostsFile={known}",
           "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=1", "-o", "BatchMode=yes",
           f"root@{GUEST_IP}", "true"]
    try:
        return boot_to_ssh(ns, qemu_argv("qemu-system-x86_64", spec), ssh, "stock", limit=300)
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}; console in {workdir}") from None


ANALYZE = ("systemd-analyze; systemd-analyze critical-chain ssh.service; "
           "systemd-analyze blame | head -30")


def analyze() -> None:
    image = ensure_test_image()
    with temporary_netns() as ns:
        env = make_env(ns, image)
        try:
            print(env.run("vm", "run", "--rm", "--", "sh", "-c", ANALYZE).stdout)
        finally:
            env.shutdown()
            shutil.rmtree(env.root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--analyze", action="store_true",
                        help="Only print systemd-analyze's view of one banger guest boot.")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/cold_boot.py needs root (network namespaces)")
    if args.analyze:
        analyze()
        return
    stock = stock_image()
    image = ensure_test_image()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with temporary_netns() as ns, tempfile.TemporaryDirectory(prefix="bgcold-") as tmp:
        subprocess.run(ns.exec_argv(["sh", "-c",
            f"ip link add bgbench type bridge && ip addr add {GATEWAY}/24 dev bgbench && "
            "ip link set bgbench up && ip tuntap add dev bgbench0 mode tap && "
            "ip link set bgbench0 master bgbench && ip link set bgbench0 up"]), check=True)
        env = make_env(ns, image)
        try:
            help_text = env.run("vm", "run", "--help").stdout
            cold = ["--cold"] if "--cold" in help_text else []
            env.run("vm", "list")  # daemon up before timing
            raw, ours = [], []
            for rep in range(args.reps):
                raw.append(stock_boot(ns, stock, Path(tmp) / "stock"))
                started = time.monotonic()
                env.run("vm", "run", *cold, "--rm", "--name", f"cold{rep}", "--", "true")
                ours.append(time.monotonic() - started)
                print(f"rep {rep}: stock {raw[-1]:.2f}s banger {ours[-1]:.2f}s", flush=True)
            print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            report("stock debian, plain qemu boot-to-ssh", raw)
            report(f"banger vm run {' '.join(cold)} --rm -- true".replace("  ", " "), ours,
                   raw, TARGET)
        finally:
            env.shutdown()
            shutil.rmtree(env.root, ignore_errors=True)


if __name__ == "__main__":
    main()
