from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import pytest

from banger.core import posixacl
from banger.core.errors import HostError, InvalidInput, PermissionDenied
from banger.core.models import ProgressEvent
from banger.host.usernet import UserNetworks, read_user_network, unit_text
from tests.support.host_fakes import FakeRunner
from tests.support.usernet import layout, net_dev

UIDS = {"alice": 1000, "bob": 1001}


def networks(tmp_path: Path, runner: FakeRunner, *, systemd: bool = False,
             euid: int = 0, groups: set[str] | None = None) -> UserNetworks:
    return UserNetworks(runner, layout(tmp_path, systemd=systemd), euid=lambda: euid,
                        lookup_uid=UIDS.__getitem__, banger="/opt/banger/bin/banger",
                        groups_of=lambda user: groups or set(),
                        group_name=lambda gid: "kvm")



def test_setup_makes_the_bridge_user_owned_taps_rules_and_the_description(
        tmp_path: Path) -> None:
    runner = FakeRunner()
    seen: list[ProgressEvent] = []
    result = asyncio.run(networks(tmp_path, runner).setup("alice", 4, seen.append))
    net = result.network
    assert ("ip", "link", "add", "bgu0", "type", "bridge") in runner.calls
    for slot in net.slots:
        assert ("ip", "tuntap", "add", "dev", slot.tap, "mode", "tap", "user", "1000") \
            in runner.calls
        assert ("ip", "link", "set", slot.tap, "master", "bgu0") in runner.calls
    script = runner.inputs[runner.calls.index(("nft", "-f", "-"))]
    assert script is not None and b"redirect to :5300" in script
    description = tmp_path / "users/alice.json"
    assert description.stat().st_mode & 0o777 == 0o644
    assert read_user_network("alice", tmp_path / "users") == net
    assert "not persisted" in result.persisted
    assert seen[-1].stage == "ready"


def test_a_second_user_gets_another_network_and_setup_again_keeps_the_first(
        tmp_path: Path) -> None:
    runner = FakeRunner()
    nets = networks(tmp_path, runner)
    alice = asyncio.run(nets.setup("alice", None, lambda e: None)).network
    bob = asyncio.run(nets.setup("bob", None, lambda e: None)).network
    again = asyncio.run(nets.setup("alice", None, lambda e: None)).network
    assert alice == again
    assert (alice.bridge, alice.cidr) != (bob.bridge, bob.cidr)


def test_setup_installs_and_enables_the_boot_unit_under_systemd(tmp_path: Path) -> None:
    runner = FakeRunner()
    result = asyncio.run(networks(tmp_path, runner, systemd=True).setup(
        "alice", None, lambda e: None))
    unit = tmp_path / "systemd/banger-user-network@.service"
    assert unit.read_text() == unit_text("/opt/banger/bin/banger")
    assert "ExecStart=/opt/banger/bin/banger system setup --user %i --no-persist" \
        in unit.read_text()
    assert ("systemctl", "enable", "banger-user-network@alice.service") in runner.calls
    assert "banger-user-network@alice.service" in result.persisted


def test_teardown_removes_exactly_what_setup_made_and_is_idempotent(tmp_path: Path) -> None:
    runner = FakeRunner()
    nets = networks(tmp_path, runner)
    net = asyncio.run(nets.setup("alice", 2, lambda e: None)).network
    asyncio.run(nets.setup("bob", 2, lambda e: None))
    net_dev(tmp_path, ["lo", "bgu0", *(s.tap for s in net.slots)])
    runner.calls.clear()
    assert asyncio.run(nets.teardown("alice", lambda e: None)) == ["alice"]
    deleted = {c[-1] for c in runner.calls if c[:3] == ("ip", "link", "del")}
    assert deleted == {"bgu0", *(s.tap for s in net.slots)}
    assert not (tmp_path / "users/alice.json").exists()
    assert (tmp_path / "users/bob.json").exists()
    assert asyncio.run(nets.teardown("alice", lambda e: None)) == []
    assert asyncio.run(nets.teardown(None, lambda e: None)) == ["bob"]


def test_setup_and_teardown_need_root_and_a_real_ordinary_user(tmp_path: Path) -> None:
    runner = FakeRunner()
    with pytest.raises(PermissionDenied) as caught:
        asyncio.run(networks(tmp_path, runner, euid=1000).setup("alice", None, lambda e: None))
    assert "sudo banger system setup" in caught.value.hint
    with pytest.raises(InvalidInput, match="no user named"):
        asyncio.run(networks(tmp_path, runner).setup("carol", None, lambda e: None))
    assert runner.calls == []


def test_a_setup_that_fails_halfway_is_on_record_for_teardown(tmp_path: Path) -> None:
    runner = FakeRunner(fail_on={("nft", "-f", "-")})
    nets = networks(tmp_path, runner)
    with pytest.raises(HostError):
        asyncio.run(nets.setup("alice", 2, lambda e: None))
    assert read_user_network("alice", tmp_path / "users") is not None
    assert asyncio.run(nets.teardown("alice", lambda e: None)) == ["alice"]


def test_a_user_without_setup_has_no_description(tmp_path: Path) -> None:
    assert read_user_network("alice", tmp_path) is None


def test_a_root_only_tun_gets_an_acl_entry_for_the_user_until_teardown(tmp_path: Path) -> None:
    runner = FakeRunner()
    nets = networks(tmp_path, runner)
    tun = tmp_path / "tun"
    tun.chmod(0o600)
    try:
        net = asyncio.run(nets.setup("alice", None, lambda e: None)).network
    except HostError as exc:
        pytest.skip(f"no ACLs on this file system: {exc.message}")
    assert net.tun_acl
    assert posixacl.user_perm(posixacl.parse(os.getxattr(tun, posixacl.XATTR)), 1000) == 6
    assert asyncio.run(nets.setup("alice", None, lambda e: None)).network.tun_acl
    asyncio.run(nets.teardown("alice", lambda e: None))
    with pytest.raises(OSError):
        os.getxattr(tun, posixacl.XATTR)
    assert tun.stat().st_mode & 0o777 == 0o600


def test_the_user_joins_the_group_of_dev_kvm_until_teardown(tmp_path: Path) -> None:
    runner = FakeRunner()
    nets = networks(tmp_path, runner)
    kvm = tmp_path / "kvm"
    kvm.touch()
    kvm.chmod(0o660)
    try:
        os.chown(kvm, -1, 4242)  # a group of its own, as udev makes it
    except PermissionError:
        os.chown(kvm, -1, os.getgid())  # not root: our own group, which is not root's
    net = asyncio.run(nets.setup("alice", None, lambda e: None)).network
    assert net.kvm_group == "kvm" and ("gpasswd", "-a", "alice", "kvm") in runner.calls
    assert read_user_network("alice", tmp_path / "users") == net
    asyncio.run(nets.teardown("alice", lambda e: None))
    assert ("gpasswd", "-d", "alice", "kvm") in runner.calls


def test_a_user_already_in_the_kvm_group_or_a_root_only_kvm_is_left_alone(
        tmp_path: Path) -> None:
    runner = FakeRunner()
    kvm = tmp_path / "kvm"
    kvm.touch()
    kvm.chmod(0o600)  # root only (as here): no group to join
    assert asyncio.run(networks(tmp_path, runner).setup(
        "alice", None, lambda e: None)).network.kvm_group == ""
    kvm.chmod(0o660)
    with contextlib.suppress(PermissionError):
        os.chown(kvm, -1, 4242)
    asyncio.run(networks(tmp_path, runner, groups={"kvm"}).setup("bob", None, lambda e: None))
    assert not [c for c in runner.calls if c[0] == "gpasswd"]
