"""OCI pull end to end: a local docker-registry inside the test namespace serves an image made
from the Debian test image's rootfs (systemd + openssh, no /boot, and a top layer that
whites out banger's boot files, so only the pull's injection can make it boot). banger
pulls it, and a VM boots it with a registered kernel and, in a second test, with the
catalog kernel `generic-6.1` fetched from the Debian mirror and banger's own initrd."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    IMAGE_CACHE,
    BangerEnv,
    ensure_cached,
    ensure_catalog_kernel,
)
from tests.support.ocitools import (
    UNCHECKED_DIFF_ID,
    Entry,
    Layout,
    Registry,
    layer_tar,
    local_registry,
    loop_mount,
    missing_tools,
    rootfs_layer,
)

pytestmark = pytest.mark.skipif(
    bool(missing_tools(("docker-registry", "skopeo", "zstd"))),
    reason="needs docker-registry, skopeo and zstd",
)

MARKER = "/etc/banger-oci-test"
TOP_LAYER = [
    Entry("etc", "dir", mode=0o755),
    Entry(MARKER.lstrip("/"), data=b"pulled from a registry\n"),
    Entry("usr/local/lib/.wh.banger"),
    Entry("etc/systemd/system/.wh.banger-boot.service"),
    Entry("etc/ssh/sshd_config.d/.wh..wh..opq"),
]


def _layout(test_image: dict[str, str]) -> Path:
    """The OCI layout of the test image (cached next to it, built once)."""
    source = Path(test_image["rootfs"])
    return ensure_cached(IMAGE_CACHE / f"oci-{source.parent.name}", "index.json",
                         lambda staging: _build_layout(source, staging))


def _build_layout(rootfs: Path, staging: Path) -> None:
    with loop_mount(rootfs) as mount:
        layout = Layout(staging)
        base = rootfs_layer(layout, mount, staging)
        layout.tag("1", layout.image([base, (layer_tar(TOP_LAYER), "gzip")],
                                     diff_ids=[UNCHECKED_DIFF_ID]))


@pytest.fixture(scope="module")
def registry(banger: BangerEnv, test_image: dict[str, str]) -> Iterator[Registry]:
    layout = _layout(test_image)
    with local_registry(banger.netns.exec_argv) as reg:
        reg.push(layout, "1", "test/debian:1")
        yield reg


def _kernel_files() -> dict[str, str]:
    return ensure_catalog_kernel("generic-6.1")


def test_pull_and_boot_a_registry_image(
    banger: BangerEnv, registry: Registry, test_image: dict[str, str]
) -> None:
    banger.run("kernel", "register", "--name", "test-kernel", "--vmlinuz", test_image["kernel"],
               "--initrd", test_image["initrd"])
    pulled = banger.run("image", "pull", f"{registry.address}/test/debian:1", "--name",
                        "pulled", "--kernel", "test-kernel", timeout=900)
    assert "layer 2/2" in pulled.stderr
    image = banger.json("image", "show", "pulled")
    assert image["source"] == f"oci: {registry.address}/test/debian:1"
    assert image["kernel"] == "" and image["kernel_name"] == "test-kernel"
    assert not image["ssh_on_first_boot"]
    kernels = {k["name"]: k for k in banger.json("kernel", "list")}
    assert kernels["test-kernel"]["local"] and not kernels["generic-6.12"]["local"]
    try:
        banger.run("vm", "create", "--image", "pulled", "--name", "oci1", timeout=600)
        out = banger.run("vm", "ssh", "oci1", "--", "sh", "-c", f"cat {MARKER}; hostname")
        assert out.stdout.split() == ["pulled", "from", "a", "registry", "oci1"]
        # The image and kernel are in use: neither can go.
        assert banger.run("image", "delete", "pulled", check=False).returncode == 1
        assert banger.run("kernel", "delete", "test-kernel", check=False).returncode == 1
    finally:
        banger.run("vm", "delete", "--force", "oci1", check=False)
    # Pulling again downloads nothing (every layer is in the blob cache).
    again = banger.run("image", "pull", f"{registry.address}/test/debian:1", "--name",
                       "pulled", "--kernel", "test-kernel", "--force", timeout=900)
    assert "0B downloaded" in again.stderr
    banger.run("image", "delete", "pulled")
    banger.run("kernel", "delete", "test-kernel")


def test_catalog_kernel_boots_a_pulled_image(banger: BangerEnv, registry: Registry) -> None:
    kernel = _kernel_files()
    # The namespace cannot reach the mirror: register the files `kernel pull` made under
    # the catalog name, which is what the image defaults to.
    with contextlib.suppress(AssertionError):
        banger.run("kernel", "delete", "generic-6.1")
    banger.run("kernel", "register", "--name", "generic-6.1", "--vmlinuz", kernel["vmlinuz"],
               "--initrd", kernel["initrd"])
    banger.run("image", "pull", f"{registry.address}/test/debian:1", "--name", "generic",
               timeout=900)
    assert banger.json("image", "show", "generic")["kernel_name"] == "generic-6.1"
    try:
        banger.run("vm", "create", "--image", "generic", "--name", "oci2", timeout=600)
        out = banger.run("vm", "ssh", "oci2", "--", "uname", "-r")
        assert out.stdout.strip() == kernel["version"]
    finally:
        banger.run("vm", "delete", "--force", "oci2", check=False)
        banger.run("image", "delete", "generic", check=False)
        banger.run("kernel", "delete", "generic-6.1", check=False)
