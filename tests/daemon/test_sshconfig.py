"""bangerd keeps ~/.config/banger/ssh_config in step with its VM records."""

from __future__ import annotations

import stat
from pathlib import Path

from banger.core.sshconfig import render_ssh_config
from tests.support.daemon_env import Env, make_env


def hosts(env: Env) -> list[str]:
    return [line for line in env.paths.ssh_config.read_text().splitlines()
            if line.startswith(("Host ", "    HostName "))]


async def test_written_at_startup_and_private(env: Env) -> None:
    path = env.paths.ssh_config
    assert path.read_text() == render_ssh_config(
        [], identity_file=str(env.paths.default_ssh_key), known_hosts=str(env.paths.known_hosts)
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_follows_creates_and_deletes(env: Env) -> None:
    vms = env.services.vms
    one = await vms.create(name="one", image=None, vcpu=None, memory_mib=None,
                           disk_size=None, start=True)
    two = await vms.create(name="two", image=None, vcpu=None, memory_mib=None,
                           disk_size=None, start=False)
    assert hosts(env) == [
        "Host one.vm", f"    HostName {one.ip}", "Host two.vm", f"    HostName {two.ip}",
    ]
    text = env.paths.ssh_config.read_text()
    assert f"    IdentityFile {env.paths.default_ssh_key}\n" in text
    assert f"    UserKnownHostsFile {env.paths.known_hosts}\n" in text

    await vms.stop("one")
    assert env.paths.ssh_config.read_text() == text  # stopped VMs keep their entry

    await vms.delete("one", force=True)
    assert hosts(env) == ["Host two.vm", f"    HostName {two.ip}"]
    assert stat.S_IMODE(env.paths.ssh_config.stat().st_mode) == 0o600
    assert not list(env.paths.config_dir.glob("*.tmp"))


async def test_a_restarted_daemon_rewrites_a_stale_file(tmp_path: Path) -> None:
    first = make_env(tmp_path)
    await first.keys.make_ed25519(first.paths.default_ssh_key, "banger")
    vm = await first.services.vms.create(name="dev", image=None, vcpu=None,
                                         memory_mib=None, disk_size=None, start=False)
    first.services.store.close()
    first.paths.ssh_config.write_text("Host stale.vm\n")
    first.paths.ssh_config.chmod(0o644)

    second = make_env(tmp_path)
    try:
        assert hosts(second) == ["Host dev.vm", f"    HostName {vm.ip}"]
        assert stat.S_IMODE(second.paths.ssh_config.stat().st_mode) == 0o600
    finally:
        second.services.store.close()
