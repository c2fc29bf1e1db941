from __future__ import annotations

import json

import pytest

from banger.core.errors import HostError
from banger.host.network import IPRoute2Network
from banger.host.processes import Result
from tests.support.host_fakes import FakeNetwork, FakeRunner


def result(stdout: object = "", returncode: int = 0) -> Result:
    text = stdout if isinstance(stdout, str) else json.dumps(stdout)
    return Result((), returncode, text, "")


def absent(name: str) -> tuple[str, ...]:
    return ("ip", "-json", "link", "show", "dev", name)


async def test_ensure_bridge_creates_a_missing_bridge() -> None:
    runner = FakeRunner(fail_on={absent("banger0")})
    await IPRoute2Network(runner).ensure_bridge("banger0", "172.16.0.1", 24)
    assert runner.calls == [
        absent("banger0"),
        ("ip", "link", "add", "banger0", "type", "bridge"),
        ("ip", "-json", "addr", "show", "dev", "banger0"),
        ("ip", "addr", "add", "172.16.0.1/24", "dev", "banger0"),
        ("ip", "link", "set", "banger0", "up"),
    ]


async def test_ensure_bridge_keeps_an_existing_address() -> None:
    addrs = [{"ifname": "banger0", "addr_info": [
        {"family": "inet6", "local": "fe80::1", "prefixlen": 64},
        {"family": "inet", "local": "172.16.0.1", "prefixlen": 24},
    ]}]
    runner = FakeRunner(responses={("ip", "-json", "addr", "show"): result(addrs)})
    await IPRoute2Network(runner).ensure_bridge("banger0", "172.16.0.1", 24)
    assert runner.calls == [
        absent("banger0"),
        ("ip", "-json", "addr", "show", "dev", "banger0"),
        ("ip", "link", "set", "banger0", "up"),
    ]


async def test_ensure_bridge_adds_a_different_prefix() -> None:
    addrs = [{"addr_info": [{"family": "inet", "local": "172.16.0.1", "prefixlen": 16}]}]
    runner = FakeRunner(responses={("ip", "-json", "addr", "show"): result(addrs)})
    await IPRoute2Network(runner).ensure_bridge("banger0", "172.16.0.1", 24)
    assert ("ip", "addr", "add", "172.16.0.1/24", "dev", "banger0") in runner.calls


async def test_create_tap_on_a_clean_host() -> None:
    runner = FakeRunner(fail_on={absent("bgr0123456789ab")})
    await IPRoute2Network(runner).create_tap("bgr0123456789ab", "banger0")
    assert runner.calls == [
        absent("bgr0123456789ab"),
        ("ip", "tuntap", "add", "dev", "bgr0123456789ab", "mode", "tap"),
        ("ip", "link", "set", "bgr0123456789ab", "master", "banger0"),
        ("ip", "link", "set", "bgr0123456789ab", "up"),
    ]


async def test_create_tap_replaces_a_stale_one() -> None:
    runner = FakeRunner()
    await IPRoute2Network(runner).create_tap("bgr1", "banger0")
    assert runner.calls[:3] == [
        absent("bgr1"),
        absent("bgr1"),
        ("ip", "link", "del", "dev", "bgr1"),
    ]
    assert ("ip", "tuntap", "add", "dev", "bgr1", "mode", "tap") in runner.calls


async def test_create_tap_cleans_up_when_enslaving_fails() -> None:
    runner = FakeRunner(fail_on={("ip", "link", "set", "bgr1", "master")})
    with pytest.raises(HostError):
        await IPRoute2Network(runner).create_tap("bgr1", "banger0")
    assert runner.calls[-1] == ("ip", "link", "del", "dev", "bgr1")
    assert ("ip", "link", "set", "bgr1", "up") not in runner.calls


async def test_delete_tap_only_when_present() -> None:
    runner = FakeRunner(fail_on={absent("bgr1")})
    network = IPRoute2Network(runner)
    await network.delete_tap("bgr1")
    assert runner.calls == [absent("bgr1")]
    runner = FakeRunner()
    await IPRoute2Network(runner).delete_tap("bgr1")
    assert runner.calls == [absent("bgr1"), ("ip", "link", "del", "dev", "bgr1")]


async def test_list_taps_filters_by_prefix_and_bridge() -> None:
    links = [
        {"ifname": "bgraaaaaaaaaaaa", "master": "banger0"},
        {"ifname": "bgrbbbbbbbbbbbb", "master": "other0"},
        {"ifname": "tap0", "master": "banger0"},
        {"ifname": "bgrcccccccccccc"},
    ]
    runner = FakeRunner(responses={("ip", "-json", "link", "show", "type", "tun"): result(links)})
    assert await IPRoute2Network(runner).list_taps("bgr", "banger0") == ["bgraaaaaaaaaaaa"]


async def test_list_taps_when_ip_fails() -> None:
    runner = FakeRunner(fail_on={("ip", "-json", "link", "show", "type", "tun")})
    assert await IPRoute2Network(runner).list_taps("bgr", "banger0") == []


async def test_fake_network_needs_the_bridge() -> None:
    network = FakeNetwork()
    with pytest.raises(HostError):
        await network.create_tap("bgr1", "banger0")
    await network.ensure_bridge("banger0", "172.16.0.1", 24)
    await network.create_tap("bgr1", "banger0")
    assert await network.list_taps("bgr", "banger0") == ["bgr1"]
    await network.delete_tap("bgr1")
    assert not await network.link_exists("bgr1")
