"""Pool mode: an ordinary user's daemon on the network root set up (`banger system setup`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from banger.core.errors import NetworkExhausted, Unsupported
from banger.core.netmode import NetworkMode
from banger.core.usernet import plan_user_network
from tests.support.daemon_env import Env, create, make_env

POOL = plan_user_network("alice", 1000, 2, taps=4)


@pytest.fixture
async def pool_env(tmp_path: Path) -> Env:
    built = make_env(tmp_path, pool=POOL)
    await built.keys.make_ed25519(built.paths.default_ssh_key, "banger")
    return built


async def test_a_vm_takes_a_slot_of_its_kind_with_the_slots_ip_and_mac(pool_env: Env) -> None:
    nat_vm = await create(pool_env, name="out", nat=True)
    contained = await create(pool_env, name="in")
    slots = {s.tap: s for s in POOL.slots}
    for vm, nat in ((nat_vm, True), (contained, False)):
        slot = slots[vm.tap]
        assert (vm.ip, vm.mac, slot.nat) == (slot.ip, slot.mac, nat)
    assert pool_env.services.network.mode is NetworkMode.POOL
    assert pool_env.services.config.bridge_ip == POOL.gateway


async def test_a_deleted_vm_gives_its_slot_back(pool_env: Env) -> None:
    first = await create(pool_env, name="a", nat=True)
    await create(pool_env, name="b", nat=True)
    with pytest.raises(NetworkExhausted) as caught:
        await create(pool_env, name="c", nat=True)
    assert "--taps" in caught.value.hint
    await pool_env.services.vms.delete("a", force=True)
    again = await create(pool_env, name="c", nat=True)
    assert again.tap == first.tap


async def test_what_roots_rules_cannot_do_is_refused_in_one_line(pool_env: Env) -> None:
    with pytest.raises(Unsupported, match="egress allowlists"):
        await create(pool_env, name="x", egress_allow=["192.0.2.0/24"])
    with pytest.raises(Unsupported, match="network groups"):
        await create(pool_env, name="x", network_group="team")
    await create(pool_env, name="y", start=False)
    with pytest.raises(Unsupported, match="keeps the NAT"):
        await pool_env.services.vms.set("y", vcpu=None, memory_mib=None, disk_size=None,
                                        nat=True)
    assert [vm.name for vm in pool_env.services.store.list_vms()] == ["y"]


async def test_dns_listens_on_the_users_port_and_doctor_shows_the_pool(pool_env: Env) -> None:
    dns = pool_env.services.vm_followers.dns
    assert dns.port == POOL.dns_port
    checks = {c.name: c for c in pool_env.services.doctor()}
    assert checks["network mode"].detail.startswith("pool:")
    assert "network privileges" not in checks
