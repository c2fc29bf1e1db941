"""The catalog beyond the default: the `debian-trixie` image booted with its own kernel, and
the bookworm test image booted with the catalog kernel `generic-6.12`. Both are built by
banger itself outside the namespace (the builds need the mirror) and cached between runs
like the test image; inside the namespace they are registered under their catalog names."""

from __future__ import annotations

import contextlib

from tests.e2e.conftest import BangerEnv, ensure_catalog_image, ensure_catalog_kernel


def _release_and_kernel(env: BangerEnv, vm: str) -> list[str]:
    out = env.run("vm", "ssh", vm, "--", "sh", "-c", ". /etc/os-release; "
                  "echo $VERSION_CODENAME; uname -r; systemctl is-system-running || true")
    return out.stdout.split()


def test_trixie_image_boots_with_its_own_kernel(banger: BangerEnv) -> None:
    files = ensure_catalog_image("debian-trixie")
    banger.run("image", "register", "--name", "debian-trixie", "--rootfs", files["rootfs"],
               "--kernel", files["kernel"], "--initrd", files["initrd"])
    try:
        banger.run("vm", "create", "--image", "debian-trixie", "--name", "trixie1", timeout=600)
        codename, kernel, state = _release_and_kernel(banger, "trixie1")
        assert codename == "trixie"
        assert kernel.startswith("6.12.")
        assert state in ("running", "degraded", "starting")
    finally:
        banger.run("vm", "delete", "--force", "trixie1", check=False)
        banger.run("image", "delete", "debian-trixie", check=False)


def test_generic_6_12_kernel_boots_the_bookworm_image(banger: BangerEnv) -> None:
    kernel = ensure_catalog_kernel("generic-6.12")
    # The namespace cannot reach the mirror: register the files `kernel pull` made under
    # their catalog name.
    with contextlib.suppress(AssertionError):
        banger.run("kernel", "delete", "generic-6.12")
    banger.run("kernel", "register", "--name", "generic-6.12", "--vmlinuz", kernel["vmlinuz"],
               "--initrd", kernel["initrd"])
    try:
        banger.run("vm", "create", "--kernel", "generic-6.12", "--name", "k612", timeout=600)
        codename, release, _ = _release_and_kernel(banger, "k612")
        assert codename == "bookworm"
        assert release == kernel["version"]
    finally:
        banger.run("vm", "delete", "--force", "k612", check=False)
        banger.run("kernel", "delete", "generic-6.12", check=False)
