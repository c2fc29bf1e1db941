from __future__ import annotations

from banger.core.config import Config
from banger.daemon.backends import jailer_check
from banger.daemon.doctor import confinement_check


def test_a_root_daemon_with_cgroups_confines_its_vmms() -> None:
    check = confinement_check(Config(), "v1", is_root=True)
    assert check.status == "ok"
    assert "uid of its own per VM" in check.detail and "cgroup (v1)" in check.detail


def test_what_is_missing_is_a_warning() -> None:
    no_user = confinement_check(Config(vmm_uids=""), "v2", is_root=True)
    assert no_user.status == "warn" and "vmm_uids" in no_user.detail
    crowded = confinement_check(Config(), "v2", is_root=True, host_ids=[1900000005])
    assert crowded.status == "warn" and "1900000005" in crowded.detail
    no_cgroups = confinement_check(Config(), None, is_root=True)
    assert no_cgroups.status == "warn" and "cgroups" in no_cgroups.detail
    user_daemon = confinement_check(Config(), "v2", is_root=False)
    assert user_daemon.status == "warn" and "as you" in user_daemon.detail
    assert not user_daemon.required


def test_firecracker_is_confined_only_through_the_jailer_under_root() -> None:
    ok = jailer_check(Config(), "/usr/bin/jailer", is_root=True)
    assert ok.status == "ok" and "/usr/bin/jailer" in ok.detail
    for jailer, root, config, why in (
        (None, True, Config(), "no jailer found"),
        ("/usr/bin/jailer", False, Config(), "not root"),
        ("/usr/bin/jailer", True, Config(vmm_uids=""), "vmm_uids is empty"),
    ):
        check = jailer_check(config, jailer, is_root=root)
        assert check.status == "warn" and not check.required
        assert "not confined" in check.detail and why in check.detail
        assert "jailer" in check.hint
