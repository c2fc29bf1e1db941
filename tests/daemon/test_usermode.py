"""A daemon in user-mode networking (not root, no host setup), on fake adapters: guests are
reached through a loopback port forwarded to their sshd, and nothing is made on the host."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from banger.core import slirp
from banger.core.errors import InvalidState, Unsupported
from banger.core.netmode import NetworkMode
from banger.daemon.vmfollowers import VMFollowers
from tests.support.daemon_env import Env, create, known_hosts, make_env, public_host_key
from tests.support.fakes import FakeHypervisor, FakeTemplateVMM
from tests.support.host_fakes import (
    FakeAgentChannel,
    FakeDNSListener,
    FakeLoopbackPorts,
    FakeNat,
)


@pytest.fixture
async def user_env(tmp_path: Path) -> AsyncIterator[Env]:
    built = make_env(tmp_path, network_mode=NetworkMode.USER)
    await built.keys.make_ed25519(built.paths.default_ssh_key, "banger")
    yield built
    built.services.store.close()


def ports_of(env: Env) -> FakeLoopbackPorts:
    ports = env.services.adapters.loopback_ports
    assert isinstance(ports, FakeLoopbackPorts)
    return ports


def nat_of(env: Env) -> FakeNat:
    nat = env.services.adapters.vm_followers.nat
    assert isinstance(nat, FakeNat)
    return nat


async def test_a_vm_gets_the_slirp_address_and_a_loopback_ssh_port(user_env: Env) -> None:
    vm = await create(user_env, name="dev")
    assert (vm.ip, vm.ssh_port) == (slirp.GUEST_IP, 40000)
    spec = user_env.hypervisor.launched[-1]
    assert spec.user_net == slirp.UserNet(ssh_port=40000, restrict=True)
    assert f"banger.ip={slirp.GUEST_IP}/24" in spec.cmdline
    assert f"banger.gw={slirp.GATEWAY}" in spec.cmdline
    assert user_env.probe.calls[-1][0] == "127.0.0.1" and user_env.probe.ports[-1] == 40000
    # Nothing on the host: no bridge, no TAP, no rules.
    assert user_env.network.bridges == {} and user_env.network.taps == {}
    assert nat_of(user_env).calls == []
    assert known_hosts(user_env) == [f"[127.0.0.1]:40000,dev.vm {public_host_key(vm)}"]
    access = user_env.services.vms.access("dev")
    assert (access.ip, access.ssh_host, access.ssh_port) == (slirp.GUEST_IP, "127.0.0.1", 40000)


async def test_nat_lifts_the_restriction(user_env: Env) -> None:
    await create(user_env, name="out", nat=True)
    assert user_env.hypervisor.launched[-1].user_net == slirp.UserNet(40000, restrict=False)


async def test_every_vm_has_a_port_of_its_own_kept_while_free(user_env: Env) -> None:
    first = await create(user_env, name="a")
    second = await create(user_env, name="b")
    assert first.ip == second.ip and first.ssh_port != second.ssh_port
    await user_env.services.vms.stop("a")
    assert (await user_env.services.vms.start("a")).ssh_port == first.ssh_port

    await user_env.services.vms.stop("a")
    ports_of(user_env).taken.add(first.ssh_port)  # someone else bound it meanwhile
    moved = await user_env.services.vms.start("a")
    assert moved.ssh_port not in (first.ssh_port, second.ssh_port)
    assert f"[127.0.0.1]:{moved.ssh_port},a.vm" in "\n".join(known_hosts(user_env))
    text = user_env.paths.ssh_config.read_text()
    assert f"Port {moved.ssh_port}" in text and "HostKeyAlias a.vm" in text


@pytest.mark.parametrize("changes", [{"egress_allow": ["192.0.2.0/24"]},
                                     {"network_group": "web"}])
async def test_policies_that_need_firewall_rules_fail_with_the_setup_command(
    user_env: Env, changes: dict[str, object]
) -> None:
    with pytest.raises(Unsupported, match="user-mode networking") as caught:
        await create(user_env, name="dev", **changes)
    assert "sudo banger system setup --user dev" in caught.value.hint
    await create(user_env, name="dev")
    with pytest.raises(Unsupported):
        await user_env.services.vms.set("dev", vcpu=None, memory_mib=None, disk_size=None,
                                        **changes)  # type: ignore[arg-type]


async def test_firecracker_fails_with_one_line_and_is_not_the_default(tmp_path: Path) -> None:
    built = make_env(tmp_path, network_mode=NetworkMode.USER, firecracker=FakeHypervisor())
    try:
        assert built.services.profile.backend == "qemu"
        with pytest.raises(Unsupported, match="Firecracker has no user-mode networking"):
            await create(built, name="fc", backend="firecracker")
        assert built.services.vms.all() == []
    finally:
        built.services.store.close()


async def test_templates_are_made_and_restored_on_the_user_network(tmp_path: Path) -> None:
    vmm = FakeTemplateVMM()
    built = make_env(tmp_path, network_mode=NetworkMode.USER, hypervisor=vmm,
                     agent=FakeAgentChannel())
    await built.keys.make_ed25519(built.paths.default_ssh_key, "banger")
    try:
        await built.services.images.ensure("debian-bookworm", lambda _: None)
        templates = built.services.templates["qemu"]
        await templates.build("debian-bookworm")
        template_spec = built.hypervisor.launched[-1]
        assert template_spec.user_net == slirp.UserNet(ssh_port=0, restrict=True)
        vm = await create(built, name="warm")
        assert vm.template
        restored = vmm.restored[-1][0]
        assert restored.user_net is not None
        assert restored.user_net.ssh_port == vm.ssh_port != 0
        assert built.network.taps == {}
    finally:
        await templates.close()
        built.services.store.close()


async def test_followers_stay_off_the_host_and_doctor_names_the_setup(user_env: Env) -> None:
    followers: VMFollowers = user_env.services.vm_followers
    await followers.start()
    try:
        await create(user_env, name="dev", nat=True)
        followers.require_nat()  # no nft needed
        await followers.verify()
        assert nat_of(user_env).calls == []
        listener = user_env.services.adapters.vm_followers.dns_listener
        assert isinstance(listener, FakeDNSListener) and listener.address is None
    finally:
        await followers.close()
    checks = {c.name: c for c in user_env.services.doctor()}
    assert "user-mode networking" in checks["network mode"].detail
    assert checks["network mode"].hint.endswith("sudo banger system setup --user dev")
    assert "network rules" not in checks and "dns server" not in checks


async def test_nat_is_switched_while_stopped_only(user_env: Env) -> None:
    await create(user_env, name="dev")
    with pytest.raises(InvalidState, match="NAT is switched when a VM starts"):
        await user_env.services.vms.set("dev", vcpu=None, memory_mib=None, disk_size=None,
                                        nat=True)
    await user_env.services.vms.stop("dev")
    await user_env.services.vms.set("dev", vcpu=None, memory_mib=None, disk_size=None, nat=True)
    await user_env.services.vms.start("dev")
    assert user_env.hypervisor.launched[-1].user_net == slirp.UserNet(40000, restrict=False)
