"""DNS, NAT and stats follow the VM lifecycle (services wired as bangerd wires them, on fake
adapters)."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from banger.core import dns
from banger.core.config import Config
from banger.core.confine import cgroup_name, vmm_limits
from banger.core.errors import HostError, InvalidState, MissingTool
from banger.core.models import VM, VMState
from banger.core.nat import GuestNet
from banger.daemon.vmfollowers import VMFollowers
from banger.host.stats import ProcessFigures
from tests.support.daemon_env import Env, make_env
from tests.support.dns import a_records, query, rcode
from tests.support.host_fakes import (
    FakeCgroups,
    FakeDNSListener,
    FakeForwarder,
    FakeGuestStats,
    FakeNat,
    FakeProcStats,
    FakeResolved,
)


@dataclasses.dataclass
class World:
    env: Env
    vm_followers: VMFollowers
    listener: FakeDNSListener
    forwarder: FakeForwarder
    resolved: FakeResolved
    nat: FakeNat
    proc: FakeProcStats
    guest: FakeGuestStats


async def make_world(root: Path, config: Config | None = None, **fakes: Any) -> World:
    env = make_env(root, config)
    await env.keys.make_ed25519(env.paths.default_ssh_key, "banger")
    adapters = env.services.adapters.vm_followers
    for name, fake in fakes.items():
        setattr(adapters, name, fake)
    # build_services wired the adapters already; rebuild the services that hold them.
    vm_followers = env.services.vm_followers
    if fakes:
        from banger.daemon.vmfollowers import build_vm_followers

        env.services.vms.listeners.clear()
        env.services.network.bridge_listeners.clear()
        env.services.network.attach_guards.clear()
        env.services.network.detach_listeners.clear()
        env.services.network.admit_listeners.clear()
        vm_followers = build_vm_followers(
            env.services.config, env.services.store, env.services.network, env.services.vms,
            adapters,
        )
        env.services.vm_followers = vm_followers
    return World(
        env, vm_followers, cast(FakeDNSListener, adapters.dns_listener),
        cast(FakeForwarder, adapters.dns_forwarder), cast(FakeResolved, adapters.resolved),
        cast(FakeNat, adapters.nat), cast(FakeProcStats, adapters.proc),
        cast(FakeGuestStats, adapters.guest_stats),
    )


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    built = await make_world(tmp_path)
    await built.vm_followers.start()
    yield built
    await built.vm_followers.close()
    built.env.services.store.close()


async def create(world: World, name: str, **changes: Any) -> VM:
    args: dict[str, Any] = {
        "name": name, "image": None, "vcpu": None, "memory_mib": None, "disk_size": None,
        "start": True,
    }
    args.update(changes)
    return await world.env.services.vms.create(**args)


async def ask(world: World, name: str, client: str = "172.16.0.9") -> bytes:
    answer = await world.listener.query(query(name), client)
    assert answer is not None
    return answer


# DNS


async def test_names_resolve_exactly_while_the_vm_runs(world: World) -> None:
    assert world.listener.address == ("172.16.0.1", 53)
    vms = world.env.services.vms
    vm = await create(world, "web", start=False)
    assert rcode(await ask(world, "web.vm")) == dns.NXDOMAIN
    await vms.start("web")
    assert a_records(await ask(world, "web.vm")) == [vm.ip]
    await vms.stop("web")
    assert rcode(await ask(world, "web.vm")) == dns.NXDOMAIN
    await vms.start("web")
    assert a_records(await ask(world, "WEB.vm")) == [vm.ip]
    await vms.delete("web", force=True)
    assert rcode(await ask(world, "web.vm")) == dns.NXDOMAIN


async def test_a_guest_that_powers_off_drops_out_of_the_zone(world: World) -> None:
    vm = await create(world, "gone")
    assert vm.pid is not None
    world.env.hypervisor.exit(vm.pid)
    await world.env.services.supervisor.reconcile()
    assert rcode(await ask(world, "gone.vm")) == dns.NXDOMAIN


async def test_other_names_are_forwarded_for_the_host_and_nat_guests_only(
    world: World,
) -> None:
    world.forwarder.answer = lambda packet: dns.build_response(
        dns.parse_query(packet), dns.NOERROR
    )
    nat_guest = await create(world, "out", nat=True)
    closed_guest = await create(world, "closed")
    for client in (nat_guest.ip, "172.16.0.1", "127.0.0.1"):
        assert rcode(await ask(world, "example.com", client)) == dns.NOERROR
    assert world.forwarder.forwarded[-1][1] == [("192.0.2.53", 53)]
    count = len(world.forwarder.forwarded)
    for client in (closed_guest.ip, "203.0.113.7"):
        assert rcode(await ask(world, "example.com", client)) == dns.REFUSED
    assert len(world.forwarder.forwarded) == count
    # .vm names are answered for everyone.
    assert a_records(await ask(world, "out.vm", "203.0.113.7")) == [nat_guest.ip]
    world.forwarder.answer = None  # the upstream does not answer
    assert rcode(await ask(world, "example.com", nat_guest.ip)) == dns.SERVFAIL
    await world.env.services.vms.set("out", vcpu=None, memory_mib=None, disk_size=None,
                                     nat=False)
    assert rcode(await ask(world, "example.com", nat_guest.ip)) == dns.REFUSED


async def test_no_upstreams_means_refused(tmp_path: Path) -> None:
    built = await make_world(tmp_path, Config(dns_upstreams=[]))
    await built.vm_followers.dns.start()
    assert rcode(await ask(built, "example.com", "172.16.0.1")) == dns.REFUSED
    assert built.forwarder.forwarded == []
    built.env.services.store.close()


async def test_our_own_address_is_never_an_upstream(tmp_path: Path) -> None:
    built = await make_world(tmp_path)
    built.vm_followers.dns._resolv_conf = lambda: "nameserver 172.16.0.1\n"
    assert built.vm_followers.dns.upstreams() == []
    built.env.services.store.close()


async def test_resolved_is_wired_when_the_bridge_appears_and_reverted_at_close(
    tmp_path: Path,
) -> None:
    built = await make_world(tmp_path, resolved=FakeResolved(available=True))
    await built.vm_followers.start()
    assert built.resolved.routes == {}  # no bridge yet
    await create(built, "web")
    assert built.resolved.routes == {"banger0": ("172.16.0.1", "vm")}
    checks = {c.name: c for c in built.env.services.doctor()}
    assert checks["dns routing"].status == "ok"
    assert "via banger0" in checks["dns routing"].detail
    await built.vm_followers.close()
    assert built.resolved.routes == {}
    built.env.services.store.close()


async def test_a_daemon_restart_rewires_an_existing_bridge(tmp_path: Path) -> None:
    built = await make_world(tmp_path, resolved=FakeResolved(available=True))
    await built.env.services.network.ensure_bridge()
    await built.vm_followers.start()
    assert "banger0" in built.resolved.routes
    await built.vm_followers.close()
    built.env.services.store.close()


async def test_doctor_explains_dns_problems(tmp_path: Path) -> None:
    built = await make_world(
        tmp_path, dns_listener=FakeDNSListener(fail=PermissionError(13, "Permission denied"))
    )
    await built.vm_followers.start()
    checks = {c.name: c for c in built.env.services.doctor()}
    assert checks["dns server"].status == "warn"
    assert "Permission denied" in checks["dns server"].detail
    assert checks["dns routing"].status == "warn"
    assert "server=/vm/172.16.0.1" in checks["dns routing"].hint
    await built.vm_followers.close()
    built.env.services.store.close()


# Network rules


def nat_ips(world: World) -> list[tuple[str, bool]]:
    return [(g.ip, g.nat) for g in world.nat.guests.get("banger0", [])]


async def test_rules_follow_the_vm(world: World) -> None:
    vms = world.env.services.vms
    vm = await create(world, "out", nat=True)
    assert vm.nat
    [guest] = world.nat.guests["banger0"]
    assert guest == GuestNet("out", vm.id, vm.ip, vm.mac, vm.tap, nat=True)
    assert world.nat.rules["banger0"].bridge_ip == "172.16.0.1"
    assert world.nat.forwarding
    await vms.stop("out")
    assert world.nat.guests == {}
    await vms.start("out")
    assert nat_ips(world) == [(vm.ip, True)]
    other = await create(world, "other")
    assert nat_ips(world) == [(vm.ip, True), (other.ip, False)]  # contained, still ruled

    updated = await vms.set("other", vcpu=None, memory_mib=None, disk_size=None, nat=True)
    assert updated.nat and updated.state == VMState.RUNNING  # no stop needed for NAT
    assert nat_ips(world) == [(vm.ip, True), (other.ip, True)]
    await vms.set("out", vcpu=None, memory_mib=None, disk_size=None, nat=False)
    assert nat_ips(world) == [(vm.ip, False), (other.ip, True)]
    await vms.delete("other", force=True)
    await vms.delete("out", force=True)
    assert world.nat.guests == {}
    assert world.nat.calls[-1] == "remove"  # nothing left behind


async def test_rules_are_written_again_only_when_they_change(world: World) -> None:
    await create(world, "one")
    written = world.nat.calls.count("replace")
    await world.env.services.vm_followers.nat.sync()  # nothing changed: nothing written
    assert world.nat.calls.count("replace") == written
    await world.env.services.vm_followers.nat.sync(startup=True)  # a new daemon: always
    assert world.nat.calls.count("replace") == written + 1
    await create(world, "two")
    assert world.nat.calls.count("replace") > written + 1


async def test_a_tap_is_quarantined_before_it_joins_the_bridge(world: World) -> None:
    seen: list[set[str]] = []
    replace = world.nat.replace

    async def spy(bridge: str, bridge_ip: str, guests: Any, quarantined: Any) -> None:
        seen.append(set(quarantined))
        await replace(bridge, bridge_ip, guests, quarantined)

    world.nat.replace = spy  # type: ignore[method-assign]
    vm = await create(world, "new")
    assert seen[0] == {vm.tap}  # before the TAP existed: all its frames dropped
    assert world.nat.rules["banger0"].quarantined == set()  # now it is a guest


async def test_an_admitted_guest_has_its_rules_before_its_vm_is_live(world: World) -> None:
    """A restored guest gets its rules while it applies its identity (vmboot's warm start),
    before the store says its VM runs; they go with its TAP if the start fails."""
    network = world.env.services.network
    await create(world, "one")
    await world.env.services.vms.stop("one")
    vm = world.env.services.vms.get("one")
    await network.attach(vm.tap)
    assert world.nat.rules["banger0"].quarantined == {vm.tap}
    await network.admit(vm)
    assert nat_ips(world) == [(vm.ip, False)]
    assert world.nat.rules["banger0"].quarantined == set()
    await network.detach(vm.tap)
    assert world.nat.guests == {} and world.nat.calls[-1] == "remove"


async def test_groups_and_egress_reach_the_rules(world: World) -> None:
    vms = world.env.services.vms
    await create(world, "a", network_group="web", egress_allow=["example.org", "10.1.0.0/16"])
    b = await create(world, "b")
    rules = {g.name: g for g in world.nat.guests["banger0"]}
    assert rules["a"].group == "web" and rules["a"].allow_cidrs == ("10.1.0.0/16",)
    assert rules["a"].allow_names and not rules["b"].allow_names
    await vms.set("b", vcpu=None, memory_mib=None, disk_size=None, network_group="web")
    assert {g.group for g in world.nat.guests["banger0"]} == {"web"}
    assert b.egress_allow == []


async def test_vm_defaults_give_the_egress_allowlist(tmp_path: Path) -> None:
    config = Config.model_validate({"vm_defaults": {"egress_allow": ["example.org"]}})
    built = await make_world(tmp_path, config)
    vm = await create(built, "d", start=False)
    assert vm.egress_allow == ["example.org"]
    explicit = await create(built, "e", start=False, egress_allow=[])
    assert explicit.egress_allow == []
    built.env.services.store.close()


async def test_allowed_names_are_answered_and_their_addresses_allowed(world: World) -> None:
    world.forwarder.answer = lambda packet: dns.build_response(
        dns.parse_query(packet), dns.NOERROR,
        answers=(b"\xc0\x0c" + struct.pack("!HHIH", dns.TYPE_A, dns.CLASS_IN, 7, 4)
                 + bytes([198, 51, 100, 9]),),
    )
    vm = await create(world, "picky", egress_allow=["example.org", "*.allowed.test"])
    assert dns.answer_addresses(await ask(world, "example.org", vm.ip)) == [("198.51.100.9", 7)]
    assert world.nat.allowed[vm.id] == {"198.51.100.9": 60}  # TTL 7, at least a minute
    assert rcode(await ask(world, "www.allowed.test", vm.ip)) == dns.NOERROR
    count = len(world.forwarder.forwarded)
    for name in ("example.com", "allowed.test", "evil-example.org"):
        assert rcode(await ask(world, name, vm.ip)) == dns.REFUSED
    assert len(world.forwarder.forwarded) == count  # never asked upstream

    async def broken(*_: object) -> None:
        raise HostError("nft failed")

    world.nat.allow = broken  # type: ignore[method-assign]
    assert rcode(await ask(world, "example.org", vm.ip)) == dns.SERVFAIL
    with pytest.raises(InvalidState):  # a VM that is gone gets no set back
        await world.vm_followers.nat.allow("gone", [("192.0.2.1", 60)])


async def test_a_failing_rule_update_stops_the_vm_from_starting(world: World) -> None:
    async def broken(*_: object) -> None:
        raise HostError("`nft -f -` failed: Operation not permitted")

    await create(world, "running")
    world.nat.replace = broken  # type: ignore[method-assign]
    with pytest.raises(HostError):
        await create(world, "natfail")
    assert [vm.name for vm in world.env.services.vms.all()] == ["running"]
    await world.vm_followers.nat.verify()
    checks = {c.name: c for c in world.env.services.doctor()}
    assert checks["network rules"].status == "fail"
    assert "Operation not permitted" in checks["network rules"].detail


async def test_doctor_sees_missing_rules(world: World) -> None:
    await create(world, "watched")
    await world.vm_followers.nat.verify()
    checks = {c.name: c for c in world.env.services.doctor()}
    assert checks["network rules"].status == "ok"
    world.nat.rules.clear()  # someone flushed them
    await world.vm_followers.nat.verify()
    checks = {c.name: c for c in world.env.services.doctor()}
    assert checks["network rules"].status == "fail"
    assert "inet fwd_banger0" in checks["network rules"].detail


async def test_startup_rebuilds_rules_from_the_store(tmp_path: Path) -> None:
    stale = FakeNat()
    await stale.replace("banger0", "172.16.0.1",
                        [GuestNet("ghost", "0", "172.16.0.99", "02:00:00:00:00:01", "bgr0")], [])
    built = await make_world(tmp_path, nat=stale)
    await built.vm_followers.start()
    assert built.nat.guests == {}  # left by a VM that no longer exists
    vm = await create(built, "kept", nat=True)
    await built.vm_followers.close()

    # A new daemon (same store, rules wiped meanwhile) puts them back.
    built.nat.rules.clear()
    await built.vm_followers.start()
    assert nat_ips(built) == [(vm.ip, True)]
    await built.vm_followers.close()
    built.env.services.store.close()


async def test_nat_needs_nft(tmp_path: Path) -> None:
    built = await make_world(tmp_path, nat=FakeNat(is_available=False))
    with pytest.raises(MissingTool, match="nft"):
        built.vm_followers.nat.require()
    checks = {c.name: c for c in built.env.services.doctor()}
    assert checks["network rules"].status == "fail"
    built.env.services.store.close()


# stats and auto-stop


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def stats_world(tmp_path: Path, config: Config) -> tuple[World, Clock]:
    built = await make_world(tmp_path, config)
    clock = Clock()
    stats = built.vm_followers.stats
    stats._clock = clock
    stats._since = 0.0
    return built, clock


def run_for(world: World, vm: VM, ticks: int) -> None:
    assert vm.pid is not None
    before = world.proc.processes.get(vm.pid, ProcessFigures(0, 500 << 20, None))
    world.proc.processes[vm.pid] = dataclasses.replace(
        before, cpu_ticks=before.cpu_ticks + ticks
    )


def guest_busy(world: World, busy: int, idle: int) -> None:
    figures = world.guest.figures
    world.guest.figures = dataclasses.replace(
        figures, cpu_busy_ticks=figures.cpu_busy_ticks + busy,
        cpu_total_ticks=figures.cpu_total_ticks + busy + idle,
    )


async def test_poller_keeps_recent_samples(tmp_path: Path) -> None:
    built, clock = await stats_world(tmp_path, Config())
    stats = built.vm_followers.stats
    vm = await create(built, "busy")
    vm = dataclasses.replace(vm, started_at=clock.now)
    built.env.services.store.put_vm(vm)
    for _ in range(3):
        run_for(built, vm, 50)  # 0.5 s of CPU per 10 s
        guest_busy(built, 30, 70)
        clock.now += 10
        await stats.poll_once()
    report = await stats.stats("busy")
    assert report.interval == 10 and len(report.samples) == 4
    first, latest = report.samples[0], report.samples[-1]
    assert first.host is not None and first.host.cpu_percent is None
    assert latest.host is not None and latest.host.cpu_percent == 0.0  # asked right after
    assert report.samples[-2].host is not None and report.samples[-2].host.cpu_percent == 5.0
    assert report.samples[-2].guest_cpu_percent == 30.0
    assert latest.guest is not None and latest.guest.disks[1].mount == "/root"
    assert built.guest.calls == [vm.ip] * 4

    built.guest.error = HostError("guest stats from 172.16.0.2: timed out")
    assert (await stats.stats("busy")).samples[-1].guest_error.endswith("timed out")

    await built.env.services.vms.stop("busy")
    assert (await stats.stats("busy")).samples == []
    assert built.guest.forgotten == [vm.ip]
    built.env.services.store.close()


async def test_history_is_bounded(tmp_path: Path) -> None:
    built, clock = await stats_world(tmp_path, Config())
    await create(built, "long")
    for _ in range(70):
        clock.now += 10
        await built.vm_followers.stats.poll_once()
    assert len((await built.vm_followers.stats.stats("long")).samples) == 60
    built.env.services.store.close()


async def test_idle_vms_are_stopped_after_the_limit(tmp_path: Path) -> None:
    built, clock = await stats_world(
        tmp_path, Config(stats_poll_interval="10s", auto_stop_stale_after="1m")
    )
    stats, vms = built.vm_followers.stats, built.env.services.vms
    idle = await create(built, "idle")
    used = await create(built, "used")
    for vm in (idle, used):
        built.env.services.store.put_vm(dataclasses.replace(vm, started_at=clock.now))
        run_for(built, vm, 0)
    built.proc.open_connections[used.ip] = 1  # an ssh session stays open
    for _ in range(5):
        clock.now += 10
        guest_busy(built, 1, 99)
        await stats.poll_once()
    assert {vm.name: vm.state for vm in vms.all()} == {
        "idle": VMState.RUNNING, "used": VMState.RUNNING,
    }
    for _ in range(3):
        clock.now += 10
        guest_busy(built, 1, 99)
        await stats.poll_once()
    assert {vm.name: vm.state for vm in vms.all()} == {
        "idle": VMState.STOPPED, "used": VMState.RUNNING,
    }
    report = await stats.stats("used")
    assert report.auto_stop_after == 60 and report.idle_since is not None
    built.env.services.store.close()


async def test_busy_guests_are_not_idle(tmp_path: Path) -> None:
    built, clock = await stats_world(
        tmp_path, Config(stats_poll_interval="10s", auto_stop_stale_after="30s")
    )
    vm = await create(built, "builder")
    built.env.services.store.put_vm(dataclasses.replace(vm, started_at=clock.now))
    run_for(built, vm, 0)
    for _ in range(10):
        clock.now += 10
        guest_busy(built, 60, 40)
        await built.vm_followers.stats.poll_once()
    assert built.env.services.vms.get("builder").state == VMState.RUNNING
    built.env.services.store.close()


async def test_stats_read_the_vmms_cgroup(tmp_path: Path) -> None:
    cgroups = FakeCgroups()
    built = await make_world(tmp_path, Config(), cgroups=cgroups)
    vm = await create(built, "boxed")
    assert vm.pid is not None
    run_for(built, vm, 1)
    cgroups.confine(cgroup_name(vm.id), vm.pid, vmm_limits(memory_mib=1024, vcpu=2, tcg=True))
    host = (await built.vm_followers.stats.stats("boxed")).samples[-1].host
    assert host is not None and host.cgroup is not None
    assert host.cgroup.memory_limit == (1024 + 192 + 256) << 20
    built.env.services.store.close()
