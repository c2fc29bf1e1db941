"""`image export` / `image import` with real tar and zstd, and `image delete --force`."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.e2e.conftest import BangerEnv


def _image_names(env: BangerEnv) -> list[str]:
    return [i["name"] for i in env.json("image", "list")]


def test_export_import_boot_and_refuse_a_damaged_bundle(banger: BangerEnv) -> None:
    bundle = banger.root / "bookworm.tar.zst"
    started = time.monotonic()
    exported = banger.run("image", "export", "debian-bookworm", "-o", str(bundle))
    export_s = time.monotonic() - started
    assert "exporting debian-bookworm" in exported.stderr
    assert str(bundle) in exported.stdout and bundle.is_file()

    # The name is taken on this host: a clear refusal that points at --name.
    clash = banger.run("image", "import", str(bundle), check=False)
    assert clash.returncode != 0 and "already exists" in clash.stderr
    assert "--name" in clash.stderr

    started = time.monotonic()
    banger.run("image", "import", str(bundle), "--name", "moved")
    import_s = time.monotonic() - started
    moved = banger.json("image", "show", "moved")
    original = banger.json("image", "show", "debian-bookworm")
    assert moved["managed"] and moved["source"].startswith("import: ")
    assert Path(moved["rootfs"]).parent == banger.state_dir / "images" / "moved"
    rootfs = Path(moved["rootfs"])
    assert rootfs.stat().st_size == Path(original["rootfs"]).stat().st_size
    assert rootfs.stat().st_blocks * 512 < rootfs.stat().st_size  # still sparse
    print(f"\nexport {export_s:.1f}s, import {import_s:.1f}s, bundle "
          f"{bundle.stat().st_size >> 20} MiB, rootfs {rootfs.stat().st_size >> 20} MiB "
          f"apparent / {rootfs.stat().st_blocks * 512 >> 20} MiB allocated")

    proc = banger.run("vm", "run", "--rm", "--image", "moved", "--", "cat", "/etc/hostname")
    assert proc.stdout.strip()

    # A truncated bundle: one error line, and no image row or files left behind.
    images_before = sorted(os.listdir(banger.state_dir / "images"))
    with open(bundle, "r+b") as f:
        f.truncate(bundle.stat().st_size // 2)
    bad = banger.run("image", "import", str(bundle), "--name", "broken", check=False)
    assert bad.returncode != 0
    assert bad.stderr.count("error:") == 1 and "Traceback" not in bad.stderr
    assert "broken" not in _image_names(banger)
    assert sorted(os.listdir(banger.state_dir / "images")) == images_before
    bundle.unlink()

    # delete --force takes the (stopped) VMs of the image with it.
    banger.run("vm", "create", "--name", "onmoved", "--image", "moved", "--no-start")
    refused = banger.run("image", "delete", "moved", check=False)
    assert refused.returncode != 0 and "onmoved" in refused.stderr
    assert "--force" in refused.stderr
    banger.run("image", "delete", "--force", "moved")
    assert "moved" not in _image_names(banger)
    assert "onmoved" not in [vm["name"] for vm in banger.json("vm", "list")]
    assert not (banger.state_dir / "images" / "moved").exists()
