from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import pytest

from banger.core import agent, guest, perlkit
from banger.core.errors import ImageBuildFailed
from banger.core.imagerecipe import MASKED_GENERATORS, MASKED_UNITS
from banger.host.imagetree import (
    customize_tree,
    find_kernel,
    installed_packages,
    tree_size_bytes,
)
from tests.support.host_fakes import FakePerlKits

VENDOR = "lib/systemd/system"


# -- customisation of a fake tree ---------------------------------------------------------


def _unit(root: Path, name: str) -> None:
    path = root / VENDOR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[Unit]\n")


def _link(root: Path, path: str, target: str) -> None:
    link = root / path
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    for name in (
        "systemd-networkd.service",
        "systemd-networkd.socket",
        "docker.service",
        "docker.socket",
        "containerd.service",
        "getty@.service",
        "ssh.service",
    ):
        _unit(root, name)
    # Links point at absolute in-guest paths that do not exist on the test host.
    system = "etc/systemd/system"
    _link(root, f"{system}/multi-user.target.wants/docker.service", f"/{VENDOR}/docker.service")
    _link(root, f"{system}/multi-user.target.wants/containerd.service", "/x/containerd.service")
    _link(root, f"{system}/multi-user.target.wants/ssh.service", f"/{VENDOR}/ssh.service")
    _link(root, f"{system}/getty.target.wants/getty@tty1.service", f"/{VENDOR}/getty@.service")
    _link(root, f"{system}/timers.target.wants/apt-daily.timer", f"/{VENDOR}/apt-daily.timer")
    etc = root / "etc"
    (etc / "ssh").mkdir(parents=True)
    for key in ("ssh_host_rsa_key", "ssh_host_rsa_key.pub", "ssh_host_ed25519_key"):
        (etc / "ssh" / key).write_text("secret")
    (etc / "ssh/sshd_config").write_text("Include /etc/ssh/sshd_config.d/*.conf\n")
    (etc / "fstab").write_text("# UNCONFIGURED FSTAB FOR BASE SYSTEM")
    (etc / "machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (etc / "hostname").write_text("buildhost\n")
    (etc / "resolv.conf").write_text("nameserver 192.0.2.53\n")
    (etc / "shadow").write_text(
        "root:$y$j9T$hash:20000:0:99999:7:::\ndaemon:*:20000:0:99999:7:::\n"
    )
    (etc / "shadow").chmod(0o640)
    (root / "var/lib/dbus").mkdir(parents=True)
    (root / "var/lib/dbus/machine-id").write_text("0123\n")
    return root


def _target(root: Path, path: str) -> str:
    return os.readlink(root / path)


def test_customize_installs_the_boot_contract(tree: Path) -> None:
    customize_tree(tree)
    script = tree / guest.BOOT_SCRIPT_PATH.lstrip("/")
    assert script.read_text() == guest.BOOT_SCRIPT
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    unit = tree / "etc/systemd/system" / guest.BOOT_UNIT_NAME
    assert unit.read_text() == guest.BOOT_UNIT
    assert _target(tree, f"etc/systemd/system/sysinit.target.wants/{guest.BOOT_UNIT_NAME}") == (
        f"/etc/systemd/system/{guest.BOOT_UNIT_NAME}"
    )
    assert (tree / "etc/ssh/sshd_config.d/banger.conf").read_text() == guest.SSHD_CONFIG
    drop_in = (tree / "etc/systemd/system/ssh.service.d/banger.conf").read_text()
    assert "ExecStartPre=\n" in drop_in
    fstab = (tree / "etc/fstab").read_text()
    assert fstab.startswith("# UNCONFIGURED FSTAB FOR BASE SYSTEM\n")
    assert fstab.endswith(guest.FSTAB)


def test_a_tree_without_perl_gets_the_bundled_perl_read_only_and_its_agent_uses_it(
    tree: Path,
) -> None:
    kit = FakePerlKits().kit()
    customize_tree(tree, perl_kit=kit)
    perl = tree / perlkit.PERL_PATH.lstrip("/")
    assert perl.read_bytes() == kit.files[perlkit.PERL_PATH]
    assert stat.S_IMODE(perl.stat().st_mode) == 0o555
    module = tree / perlkit.MODULE_DIR.lstrip("/") / "strict.pm"
    assert stat.S_IMODE(module.stat().st_mode) == 0o444
    unit = (tree / "etc/systemd/system" / agent.AGENT_UNIT_NAME).read_text()
    assert f"ExecStart={kit.exec_start}\n" in unit
    assert not (tree / "usr/bin/perl").exists()


def test_a_tree_with_its_own_perl_keeps_it(tree: Path) -> None:
    (tree / "usr/bin").mkdir(parents=True)
    (tree / "usr/bin/perl").symlink_to("perl5.36.0")
    customize_tree(tree, perl_kit=FakePerlKits().kit())
    assert not (tree / perlkit.PREFIX.lstrip("/")).exists()
    unit = (tree / "etc/systemd/system" / agent.AGENT_UNIT_NAME).read_text()
    assert unit == agent.AGENT_UNIT


def test_customize_removes_shared_identity(tree: Path) -> None:
    customize_tree(tree)
    assert sorted(p.name for p in (tree / "etc/ssh").iterdir()) == ["sshd_config", "sshd_config.d"]
    assert (tree / "etc/machine-id").read_text() == ""
    assert not (tree / "var/lib/dbus/machine-id").exists()
    assert (tree / "etc/hostname").read_text() == "banger\n"
    assert "192.0.2.53" not in (tree / "etc/resolv.conf").read_text()
    assert stat.S_IMODE((tree / "etc/hostname").stat().st_mode) == 0o644
    assert (tree / "etc/default/locale").read_text() == "LANG=C.UTF-8\n"


def test_customize_locks_root_password_only(tree: Path) -> None:
    customize_tree(tree)
    shadow = tree / "etc/shadow"
    assert shadow.read_text().splitlines() == [
        "root:*:20000:0:99999:7:::",
        "daemon:*:20000:0:99999:7:::",
    ]
    assert stat.S_IMODE(shadow.stat().st_mode) == 0o640


def test_customize_units(tree: Path) -> None:
    customize_tree(tree)
    system = "etc/systemd/system"
    assert _target(tree, f"{system}/multi-user.target.wants/systemd-networkd.service") == (
        f"/{VENDOR}/systemd-networkd.service"
    )
    assert _target(tree, f"{system}/sockets.target.wants/systemd-networkd.socket") == (
        f"/{VENDOR}/systemd-networkd.socket"
    )
    assert _target(tree, f"{system}/sockets.target.wants/docker.socket") == (
        f"/{VENDOR}/docker.socket"
    )
    for gone in ("docker.service", "containerd.service"):
        assert not os.path.lexists(tree / system / "multi-user.target.wants" / gone)
    assert not os.path.lexists(tree / system / "getty.target.wants/getty@tty1.service")
    assert not os.path.lexists(tree / system / "timers.target.wants/apt-daily.timer")
    assert os.path.lexists(tree / system / "multi-user.target.wants/ssh.service")
    for unit in MASKED_UNITS:
        assert _target(tree, f"{system}/{unit}") == "/dev/null"
    for generator in MASKED_GENERATORS:
        assert _target(tree, f"etc/systemd/system-generators/{generator}") == "/dev/null"
    assert "systemd-networkd-wait-online.service" in MASKED_UNITS


def test_customize_skips_networkd_when_iproute2_is_there(tree: Path) -> None:
    # The boot unit then puts the address on itself; networkd would only cost boot time.
    (tree / "usr/sbin").mkdir(parents=True)
    (tree / "usr/sbin/ip").write_text("")
    customize_tree(tree)
    system = tree / "etc/systemd/system"
    assert not os.path.lexists(system / "multi-user.target.wants/systemd-networkd.service")
    assert not os.path.lexists(system / "sockets.target.wants/systemd-networkd.socket")
    assert not os.path.lexists(system / "dbus-org.freedesktop.network1.service")


SSHD_PAM = """\
@include common-auth
session    optional     pam_motd.so  motd=/run/motd.dynamic
session    optional     pam_motd.so noupdate
# session  optional     pam_motd.so (a comment stays as it is)
session    optional     pam_mail.so standard noenv # [1]
session    required     pam_limits.so
session    required     pam_env.so user_readenv=1 envfile=/etc/default/locale
"""


def test_customize_drops_the_login_banner_from_sshd_pam(tree: Path) -> None:
    pam = tree / "etc/pam.d/sshd"
    pam.parent.mkdir(parents=True)
    pam.write_text(SSHD_PAM)
    customize_tree(tree)
    customize_tree(tree)
    active = [ln for ln in pam.read_text().splitlines() if not ln.startswith("#")]
    assert active == [
        "@include common-auth",
        "session    required     pam_limits.so",
        "session    required     pam_env.so user_readenv=1 envfile=/etc/default/locale",
    ]
    assert "# session  optional     pam_motd.so (a comment stays as it is)" in pam.read_text()
    assert "# banger: session    optional     pam_motd.so noupdate" in pam.read_text()


def test_customize_is_idempotent(tree: Path) -> None:
    customize_tree(tree)
    customize_tree(tree)
    assert (tree / "etc/fstab").read_text().count(guest.FSTAB) == 1


def test_customize_needs_networkd(tree: Path) -> None:
    (tree / VENDOR / "systemd-networkd.service").unlink()
    with pytest.raises(ImageBuildFailed):
        customize_tree(tree)


# -- reading the tree ---------------------------------------------------------------------


def test_find_kernel_picks_the_newest_with_an_initrd(tmp_path: Path) -> None:
    boot = tmp_path / "boot"
    boot.mkdir()
    for version in ("6.1.0-9-cloud-amd64", "6.1.0-10-cloud-amd64", "6.1.0-11-cloud-amd64"):
        (boot / f"vmlinuz-{version}").write_text("k")
    for version in ("6.1.0-9-cloud-amd64", "6.1.0-10-cloud-amd64"):
        (boot / f"initrd.img-{version}").write_text("i")
    version, kernel, initrd = find_kernel(tmp_path)
    assert version == "6.1.0-10-cloud-amd64"
    assert kernel == boot / "vmlinuz-6.1.0-10-cloud-amd64"
    assert initrd == boot / "initrd.img-6.1.0-10-cloud-amd64"


def test_find_kernel_without_kernel(tmp_path: Path) -> None:
    (tmp_path / "boot").mkdir()
    with pytest.raises(ImageBuildFailed):
        find_kernel(tmp_path)


def test_installed_packages(tmp_path: Path) -> None:
    status = tmp_path / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True)
    status.write_text(
        textwrap.dedent(
            """\
            Package: zlib1g
            Status: install ok installed
            Version: 1:1.2.13.dfsg-1
            Description: compression library
             Status: not a field

            Package: removed
            Status: deinstall ok config-files
            Version: 1.0

            Package: bash
            Status: install ok installed
            Version: 5.2.15-2+b2
            """
        )
    )
    assert installed_packages(tmp_path) == ("bash=5.2.15-2+b2", "zlib1g=1:1.2.13.dfsg-1")


def test_tree_size_counts_hard_links_once(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 100_000)
    single = tree_size_bytes(tmp_path)
    os.link(tmp_path / "a", tmp_path / "b")
    assert tree_size_bytes(tmp_path) == single
    assert single >= 100_000
