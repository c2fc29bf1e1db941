from __future__ import annotations

from pathlib import Path

import pytest

from banger.core.config import Config
from banger.core.errors import ConfigError
from banger.host.hostinfo import KVMFacts
from tests.support.daemon_env import Env, make_env


def test_firecracker_is_refused_for_now(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="firecracker"):
        make_env(tmp_path, Config(backend="firecracker"))


def test_ssh_key_path_needs_both_halves(tmp_path: Path) -> None:
    key = tmp_path / "my_key"
    key.write_text("private")
    with pytest.raises(ConfigError, match=r"my_key\.pub"):
        make_env(tmp_path, Config(ssh_key_path=str(key)))


async def test_configured_ssh_key_is_used(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "id.work"
    key.parent.mkdir()
    key.write_text("private")
    key.with_name("id.work.pub").write_text("ssh-ed25519 AAAAwork me@host\n")
    env = make_env(tmp_path, Config(ssh_key_path=str(key)))
    vm = await env.services.vms.create(
        name="dev", image=None, vcpu=None, memory_mib=None, disk_size=None, start=True
    )
    assert env.services.vms.access(vm.name).identity_file == str(key)
    env.services.store.close()


def test_size_defaults_come_from_config_then_host(tmp_path: Path) -> None:
    env = make_env(tmp_path, Config.model_validate({"vm_defaults": {"memory_mib": 3000}}))
    sizes = env.services.vms.size_defaults
    assert (sizes.memory_mib.value, sizes.memory_mib.source) == (3000, "config")
    assert (sizes.vcpu.value, sizes.vcpu.source) == (2, "host")
    env.services.store.close()


def test_doctor_reports_each_requirement(env: Env) -> None:
    checks = {check.name: check for check in env.services.doctor()}
    assert {"qemu", "accel", "free disk", "default image", "vm defaults"} <= set(checks)
    assert checks["accel"].detail.startswith("tcg: no /dev/kvm")
    assert checks["default image"].status == "ok"
    assert "built on first use" in checks["default image"].detail
    assert "(host)" in checks["vm defaults"].detail
    assert all(check.status in ("ok", "warn", "fail") for check in checks.values())


def test_doctor_says_how_to_reach_a_hardware_kvm_the_user_cannot_open(env: Env) -> None:
    env.services.adapters.kvm = KVMFacts(device=True, usable=False, pvm=False,
                                         vendor_module=True, cpu_flag=True)
    accel = {check.name: check for check in env.services.doctor()}["accel"]
    assert accel.status == "warn" and "dev cannot open it" in accel.detail
    assert accel.hint is not None and "sudo banger system setup --user dev" in accel.hint
