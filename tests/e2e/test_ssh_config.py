"""`ssh <name>.vm`: bangerd keeps its ssh_config in step with its VMs, `banger ssh-config
--install` pulls it into ~/.ssh/config, plain ssh then logs in with the pinned host key, and
`--uninstall` gives back the user's file byte for byte."""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import BangerEnv

NAME = "sshcfg"
# The user's own config: CRLF, a tab, non-UTF-8 bytes and no final newline survive.
USER_CONFIG = (
    b"# my settings\r\nHost *\n    ServerAliveInterval 30\n\n"
    b"Host legacy\n\tHostName legacy.invalid\n\tUser caf\xe9"
)


@pytest.fixture(scope="module")
def vm(banger: BangerEnv) -> Iterator[dict[str, Any]]:
    created: dict[str, Any] = banger.json("vm", "create", "--name", NAME)
    try:
        yield created
    finally:
        banger.run("vm", "delete", "--force", NAME, check=False, timeout=120)


def managed_config(banger: BangerEnv) -> Path:
    return Path(banger.env["XDG_CONFIG_HOME"]) / "banger" / "ssh_config"


def plain_ssh(banger: BangerEnv, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # ssh reads ~/.ssh/config from the passwd entry's home, not $HOME, so the test's own
    # file is named explicitly; everything else is the user's plain `ssh <name>.vm`.
    return subprocess.run(
        banger.netns.exec_argv(["ssh", "-F", str(config), "-o", "BatchMode=yes", *args]),
        env=banger.env, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL, check=False,
    )


def test_install_ssh_and_uninstall(banger: BangerEnv, vm: dict[str, Any]) -> None:
    managed = managed_config(banger)
    text = managed.read_text()
    assert f"Host {NAME}.vm\n    HostName {vm['ip']}\n    User root\n" in text
    assert stat.S_IMODE(managed.stat().st_mode) == 0o600

    ssh_dir = Path(banger.env["HOME"]) / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    config = ssh_dir / "config"
    config.write_bytes(USER_CONFIG)
    config.chmod(0o644)

    include = banger.run("ssh-config").stdout
    assert include == f"Include {managed}\n"  # absolute: $HOME is not the passwd home here

    banger.run("ssh-config", "--install")
    installed = config.read_bytes()
    assert installed.startswith(b"# >>> banger ssh-config >>>\n")
    assert include.encode() in installed
    assert installed.endswith(USER_CONFIG)
    assert stat.S_IMODE(config.stat().st_mode) == 0o644
    assert "already set up" in banger.run("ssh-config", "--install").stdout
    assert config.read_bytes() == installed

    login = plain_ssh(banger, config, f"{NAME}.vm", "hostname")
    assert login.returncode == 0, login.stderr
    assert login.stdout.strip() == NAME
    # Host keys are checked against banger's known_hosts, never learned on first use.
    assert "Permanently added" not in login.stderr
    assert not (ssh_dir / "known_hosts").exists()

    banger.run("ssh-config", "--uninstall")
    assert config.read_bytes() == USER_CONFIG
    assert stat.S_IMODE(config.stat().st_mode) == 0o644
    assert sorted(p.name for p in ssh_dir.iterdir()) == ["config"]
    assert plain_ssh(banger, config, f"{NAME}.vm", "true").returncode == 255


def test_the_managed_file_follows_creates_and_deletes(
    banger: BangerEnv, vm: dict[str, Any]
) -> None:
    banger.run("vm", "create", "--name", "sshcfg-new", "--no-start")
    try:
        assert "Host sshcfg-new.vm\n" in managed_config(banger).read_text()
    finally:
        banger.run("vm", "delete", "sshcfg-new")
    text = managed_config(banger).read_text()
    assert "sshcfg-new" not in text
    assert f"Host {NAME}.vm\n" in text
