"""An OCI image without openssh-server: banger's first-boot unit installs it with the guest's
apt when the VM has NAT, and without NAT the VM fails with the guest's own reason.

The image is the test image with openssh-server purged (systemd stays), and its apt sources
point at a tiny repository on "the internet" (conftest.internet_site, reachable from a guest
only through banger's NAT) that holds exactly the packages the image lacks. Those are
fetched on the host with `apt-get install --download-only` against the image's dpkg status
(the host's mirror, before any namespace exists) and cached with the image."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    IMAGE_CACHE,
    INTERNET_URL,
    BangerEnv,
    ensure_cached,
    internet_site,
)
from tests.support.ocitools import (
    UNCHECKED_DIFF_ID,
    Layout,
    local_registry,
    loop_mount,
    missing_tools,
    rootfs_layer,
)

pytestmark = pytest.mark.skipif(
    bool(missing_tools(("docker-registry", "skopeo", "zstd", "apt-get", "dpkg-deb"))),
    reason="needs docker-registry, skopeo, zstd, apt-get and dpkg-deb",
)

PURGED = ("openssh-server", "openssh-sftp-server")
# Bump when the recipe below changes, so cached copies are rebuilt.
RECIPE = "2"


def _image(test_image: dict[str, str]) -> Path:
    """{layout/, repo/}: the OCI layout of the image without sshd and its apt repository."""
    source = Path(test_image["rootfs"])
    return ensure_cached(IMAGE_CACHE / f"nossh-{RECIPE}-{source.parent.name}",
                         "layout/index.json", lambda staging: _build(source, staging))


def _build(rootfs: Path, staging: Path) -> None:
    (staging / "repo/partial").mkdir(parents=True)
    copy = staging / "rootfs.ext4"
    subprocess.run(["cp", "--sparse=always", str(rootfs), str(copy)], check=True)
    with loop_mount(copy, read_only=False) as mount:
        _customise(mount, staging / "repo")
        layout = Layout(staging / "layout")
        base = rootfs_layer(layout, mount, staging)
        layout.tag("1", layout.image([base], diff_ids=[UNCHECKED_DIFF_ID]))
    copy.unlink()


def _customise(mount: Path, repo: Path) -> None:
    """Purge sshd from the mounted rootfs, fetch what it then lacks into `repo`, point its apt
    at that repository and drop banger's boot files."""
    # No maintainer script may touch a service: the chroot is not a running system.
    policy = mount / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    subprocess.run(["chroot", str(mount), "dpkg", "--purge", *PURGED], check=True,
                   capture_output=True)
    policy.unlink()
    # What the image now lacks for openssh-server, from the host's mirror.
    subprocess.run([
        "apt-get", "install", "--download-only", "-y", "-q", "--no-install-recommends",
        "-o", "Debug::NoLocking=1",
        "-o", f"Dir::State::status={mount}/var/lib/dpkg/status",
        "-o", f"Dir::Cache::archives={repo}",
        "openssh-server",
    ], check=True, capture_output=True)
    _index(repo)
    sources = mount / "etc/apt/sources.list.d"
    shutil.rmtree(sources, ignore_errors=True)
    sources.mkdir()
    (mount / "etc/apt/sources.list").write_text(f"deb [trusted=yes] {INTERNET_URL} ./\n")
    # Without NAT the guest's packets to the repo go unanswered: give up after one try
    # in seconds rather than apt's retries over a minute.
    (mount / "etc/apt/apt.conf.d/90banger-test").write_text(
        'Acquire::Retries "0";\nAcquire::http::Timeout "8";\n'
    )
    # Only the pull's injection may make it boot: drop banger's own boot files.
    for path in ("usr/local/lib/banger", "etc/systemd/system/banger-boot.service",
                 "etc/systemd/system/sysinit.target.wants/banger-boot.service",
                 "etc/systemd/system/ssh.service.d", "etc/ssh/sshd_config.d"):
        target = mount / path
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)


def _index(repo: Path) -> None:
    """A flat apt repository: Packages from each .deb's control fields, plain file names."""
    shutil.rmtree(repo / "partial", ignore_errors=True)
    (repo / "lock").unlink(missing_ok=True)
    stanzas = []
    for deb in sorted(repo.glob("*.deb")):
        fields = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True,
                                check=True).stdout.rstrip("\n")
        package = deb.name.split("_", 1)[0]
        deb = deb.rename(repo / f"{package}.deb")  # no '%3a' epoch quoting in the URL
        data = deb.read_bytes()
        stanzas.append(f"{fields}\nFilename: ./{deb.name}\nSize: {len(data)}\n"
                       f"SHA256: {hashlib.sha256(data).hexdigest()}\n")
    assert stanzas, "apt-get downloaded nothing"
    (repo / "Packages").write_text("\n".join(stanzas))


@pytest.fixture(scope="module")
def nossh(banger: BangerEnv, test_image: dict[str, str]) -> Iterator[str]:
    """The image pulled into `banger` as "nossh", with the internet serving its repo."""
    cache = _image(test_image)
    with local_registry(banger.netns.exec_argv) as registry, \
            internet_site(banger.netns, cache / "repo"):
        ref = registry.push(cache / "layout", "1", "test/nossh:1")
        banger.run("kernel", "register", "--name", "nossh-kernel", "--vmlinuz",
                   test_image["kernel"], "--initrd", test_image["initrd"])
        banger.run("image", "pull", ref, "--name", "nossh", "--kernel", "nossh-kernel",
                   timeout=900)
        try:
            yield "nossh"
        finally:
            banger.run("image", "delete", "nossh", check=False)
            banger.run("kernel", "delete", "nossh-kernel", check=False)


def test_without_nat_the_vm_fails_saying_why(banger: BangerEnv, nossh: str) -> None:
    assert banger.json("image", "show", nossh)["ssh_on_first_boot"]
    try:
        run = banger.run("vm", "run", "--image", nossh, "--name", "nossh1", "--", "true",
                         check=False, timeout=600)
        assert run.returncode != 0
        assert "has no sshd" in run.stderr and "needs --nat" in run.stderr  # up front
        assert "error: nossh1: FAILED to install openssh-server" in run.stderr
        assert "banger vm logs nossh1" in run.stderr and "--nat" in run.stderr.split("hint:")[1]
        assert "Traceback" not in run.stderr
        logs = banger.run("vm", "logs", "nossh1").stdout
        assert "banger: this image has no openssh-server; installing it" in logs
        assert "banger: FAILED to install openssh-server" in logs
        vm = banger.json("vm", "show", "nossh1")
        assert vm["state"] == "error" and "FAILED" in vm["last_error"]
    finally:
        banger.run("vm", "delete", "--force", "nossh1", check=False)


def test_with_nat_the_first_boot_installs_sshd(banger: BangerEnv, nossh: str) -> None:
    try:
        created = banger.run("vm", "create", "--image", nossh, "--name", "nossh2", "--nat",
                             check=False, timeout=900)
        assert created.returncode == 0, (
            created.stderr + banger.run("vm", "logs", "nossh2", check=False).stdout
        )
        out = banger.run("vm", "ssh", "nossh2", "--", "sh", "-c",
                         "dpkg-query -W -f '${Status}\\n' openssh-server; hostname")
        assert out.stdout.split() == ["install", "ok", "installed", "nossh2"]
        logs = banger.run("vm", "logs", "nossh2").stdout
        assert "banger: openssh-server installed; ssh.service started" in logs
        assert "policy-rc.d denied" in logs  # sshd did not start half-configured
    finally:
        banger.run("vm", "delete", "--force", "nossh2", check=False)
