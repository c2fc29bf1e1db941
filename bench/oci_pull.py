"""Pull + flatten of a ~300 MiB three-layer image from a local registry: banger's puller
(download, flatten, boot contract, mkfs.ext4) vs `skopeo copy` + `umoci unpack` +
`mkfs.ext4 -d` of the same image, in the same run, each from an empty cache.

    python bench/oci_pull.py [--reps 3]

Target: banger <= 1.0x the three-tool pipeline. Needs root (umoci and ownership), the
Debian test image (built by the e2e fixture), docker-registry, skopeo, umoci, zstd."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ensure_test_image, report
from tests.ocitools import Layout, local_registry, loop_mount, missing_tools

from banger.core.imagerecipe import image_size_bytes, mkfs_command
from banger.core.oci import parse_reference
from banger.host.imagetree import tree_size_bytes
from banger.host.ocipull import OCIPuller

# Directories of the test image's rootfs that make up each layer (~137 + 135 + 41 MiB).
LAYERS = (
    ["./usr/lib/x86_64-linux-gnu"],
    ["./usr/sbin", "./usr/share"],
    ["./usr/lib/python3.11", "./etc", "./var"],
)


def build_layout(rootfs: Path, root: Path) -> None:
    with loop_mount(rootfs) as mount:
        layout = Layout(root)
        descriptors = []
        diff_ids = []  # umoci checks them
        for index, paths in enumerate(LAYERS):
            blob = root / f"layer{index}.tar.gz"
            tar = subprocess.Popen(["tar", "-C", str(mount), "--numeric-owner", "-cf", "-",
                                    *paths], stdout=subprocess.PIPE)
            assert tar.stdout is not None
            hasher = hashlib.sha256()
            with open(blob, "wb") as out:
                gz = subprocess.Popen(["gzip", "-1", "-c"], stdin=subprocess.PIPE, stdout=out)
                assert gz.stdin is not None
                while chunk := tar.stdout.read(1 << 20):
                    hasher.update(chunk)
                    gz.stdin.write(chunk)
                gz.stdin.close()
                assert gz.wait() == 0
            assert tar.wait() == 0
            diff_ids.append(f"sha256:{hasher.hexdigest()}")
            descriptors.append(layout.blob_file(
                blob, "application/vnd.oci.image.layer.v1.tar+gzip"))
        layout.tag("1", layout.image(descriptors, diff_ids=diff_ids))


def banger_pull(reference: str, work: Path) -> float:
    started = time.monotonic()
    asyncio.run(OCIPuller(work / "cache").pull(
        reference=parse_reference(reference), dest_dir=work / "image", max_bytes=8 << 30,
        progress=lambda event: None,
    ))
    return time.monotonic() - started


def pipeline(reference: str, work: Path) -> float:
    started = time.monotonic()
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{reference}",
                    f"oci:{work / 'layout'}:1"], check=True)
    subprocess.run(["umoci", "unpack", "--image", f"{work / 'layout'}:1",
                    str(work / "bundle")], check=True, capture_output=True)
    tree = work / "bundle" / "rootfs"
    size = image_size_bytes(tree_size_bytes(tree))
    subprocess.run(mkfs_command(tree=tree, output=work / "rootfs.ext4", size_bytes=size),
                   check=True)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    missing = missing_tools(("docker-registry", "skopeo", "umoci", "zstd", "mkfs.ext4"))
    if missing:
        print(f"needs {', '.join(missing)}", file=sys.stderr)
        return 2
    rootfs = Path(ensure_test_image()["rootfs"])
    scratch = Path(tempfile.mkdtemp(prefix="bgbench-", dir="/var/tmp"))
    try:
        build_layout(rootfs, scratch / "layout")
        total = sum(p.stat().st_size for p in (scratch / "layout/blobs/sha256").iterdir())
        with local_registry() as registry:
            reference = registry.push(scratch / "layout", "1", "bench/image:1")
            ref = reference
            print(f"image: 3 layers, {total / 2**20:.0f} MiB compressed", flush=True)
            ours: list[float] = []
            theirs: list[float] = []
            for rep in range(args.reps):
                for name in (("ours", "theirs") if rep % 2 == 0 else ("theirs", "ours")):
                    work = scratch / f"{name}-{rep}"
                    work.mkdir()
                    if name == "ours":
                        ours.append(banger_pull(ref, work))
                    else:
                        theirs.append(pipeline(ref, work))
                    shutil.rmtree(work)
        report("skopeo copy + umoci unpack + mkfs.ext4 -d", theirs)
        report("banger OCI pull (download+flatten+ext4)", ours, theirs, target=1.0)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
