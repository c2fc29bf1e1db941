"""Network containment, with one guest playing the attacker.

Three guests on one installation: `victim` has NAT (everything), `peer` shares a network
group with `attacker`, and `attacker` may reach one name and one address of "the internet".
Around them, all made by the test and joined to the banger namespace by veth pairs: an
"internet" namespace (a DNS server, greeting TCP ports and logging UDP ports on three
addresses), an "other network" (as a VPN or a container bridge would be), and a TCP listener
in the banger namespace itself (a host service on 0.0.0.0). The attacker tries to spoof its
IP and MAC, to take the victim's address by ARP, and to reach everything; the test asserts on
what the attacker saw and on what each target logged."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import BangerEnv, Netns

HERE = Path(__file__).parent
SERVER = HERE / "netns_server.py"
ALLOWED_IP = "198.51.100.1"  # allowed.test resolves here
DENIED_IP = "198.51.100.3"  # denied.test resolves here; never allowed
CIDR_IP = "198.51.100.4"  # allowed by address
UPLINK_IP = "198.51.100.2"  # the banger namespace's end
OTHER_NETWORK_IP = "10.99.0.1"
HOST_PORT = 9999


@contextlib.contextmanager
def joined_namespace(netns: Netns, addresses: list[str], peer_address: str) -> Iterator[Netns]:
    """A namespace joined to `netns` by a veth pair: `addresses` (CIDRs) on its end,
    `peer_address` on ours, no route back to anything else."""
    ns = Netns(f"bgc-{uuid.uuid4().hex[:8]}")
    inner, outer = f"bgci{uuid.uuid4().hex[:6]}", f"bgco{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns.name], check=True)
    try:
        subprocess.run(["ip", "link", "add", outer, "netns", netns.name, "type", "veth",
                        "peer", "name", inner, "netns", ns.name], check=True)
        for argv in (
            ns.exec_argv(["ip", "link", "set", "lo", "up"]),
            *(ns.exec_argv(["ip", "addr", "add", a, "dev", inner]) for a in addresses),
            ns.exec_argv(["ip", "link", "set", inner, "up"]),
            netns.exec_argv(["ip", "addr", "add", peer_address, "dev", outer]),
            netns.exec_argv(["ip", "link", "set", outer, "up"]),
        ):
            subprocess.run(argv, check=True)
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns.name], check=False)  # the veth goes along


@contextlib.contextmanager
def serving(ns: Netns, log: Path, *args: str) -> Iterator[Path]:
    """netns_server.py in `ns`, logging to `log`; killed (by its PID) on exit."""
    server = subprocess.Popen(ns.exec_argv([sys.executable, str(SERVER), str(log), *args]))
    try:
        for _ in range(50):
            if log.exists() and "ready" in log.read_text():
                break
            time.sleep(0.1)
        yield log
    finally:
        server.kill()
        server.wait()


@pytest.fixture
def world(second_banger: Any) -> Iterator[dict[str, Any]]:
    logs = Path(tempfile.mkdtemp(prefix="bgc-", dir="/tmp"))
    env: BangerEnv = second_banger(f'dns_upstreams = ["{ALLOWED_IP}"]\n')
    with contextlib.ExitStack() as stack:
        internet = stack.enter_context(joined_namespace(
            env.netns, [f"{ip}/24" for ip in (ALLOWED_IP, DENIED_IP, CIDR_IP)],
            f"{UPLINK_IP}/24",
        ))
        other = stack.enter_context(joined_namespace(env.netns, [f"{OTHER_NETWORK_IP}/24"],
                                                     "10.99.0.2/24"))
        stack.enter_context(serving(
            internet, logs / "internet.log",
            "--dns", ALLOWED_IP, f"allowed.test={ALLOWED_IP},denied.test={DENIED_IP}",
            *(arg for ip in (ALLOWED_IP, DENIED_IP, CIDR_IP)
              for arg in ("--tcp", f"{ip}:8080", "--udp", f"{ip}:9000")),
        ))
        stack.enter_context(serving(other, logs / "other.log",
                                    "--tcp", f"{OTHER_NETWORK_IP}:8080"))
        stack.enter_context(serving(env.netns, logs / "host.log",
                                    "--tcp", f"0.0.0.0:{HOST_PORT}"))
        yield {"env": env, "logs": logs}
    subprocess.run(["rm", "-rf", str(logs)], check=False)


def nft(env: BangerEnv, family: str) -> str:
    return subprocess.run(
        env.netns.exec_argv(["nft", "list", "table", family, "banger"]),
        capture_output=True, text=True, check=False,
    ).stdout


def test_a_hostile_guest_is_contained(world: dict[str, Any]) -> None:
    env: BangerEnv = world["env"]
    logs: Path = world["logs"]
    victim = env.json("vm", "create", "--name", "victim", "--nat")
    peer = env.json("vm", "create", "--name", "peer", "--network-group", "team")
    attacker = env.json("vm", "create", "--name", "attacker", "--network-group", "team",
                        "--egress-allow", f"allowed.test,{CIDR_IP}")
    assert attacker["egress_allow"] == [CIDR_IP, "allowed.test"]
    assert attacker["network_group"] == "team"
    shown = env.run("vm", "show", "attacker").stdout
    assert f"only {CIDR_IP}, allowed.test" in shown
    assert "all (nat)" in env.run("vm", "show", "victim").stdout
    doctor = {c["name"]: c for c in env.json("doctor")}
    assert doctor["network rules"]["status"] == "ok", doctor["network rules"]

    # The host knows the victim's MAC (it ssh-ed in); the path the spoofer would use works
    # for the victim itself.
    env.run("vm", "ssh", "victim", "--", "python3", "-c",
            "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
            f".sendto(b'victim-itself', ('{DENIED_IP}', 9000))")
    # Over netlink: /sys need not be the test namespace's (nsenter keeps the host's mount).
    bridge_mac = json.loads(subprocess.run(
        env.netns.exec_argv(["ip", "-json", "link", "show", "dev", "bgt1"]),
        capture_output=True, text=True, check=True,
    ).stdout)[0]["address"]

    args = {
        "victim_ip": victim["ip"], "victim_mac": victim["mac"], "own_ip": attacker["ip"],
        "own_mac": attacker["mac"], "peer_ip": peer["ip"], "gateway": "172.16.1.1",
        "gateway_mac": bridge_mac, "host_port": HOST_PORT, "other_network": OTHER_NETWORK_IP,
        "spoof_target": DENIED_IP, "cidr_target": CIDR_IP,
    }
    run = env.run("vm", "ssh", "attacker", "--", "python3", "-", json.dumps(args),
                  input=(HERE / "guest_attacker.py").read_text(), timeout=180)
    seen = json.loads(run.stdout)
    time.sleep(1)  # the last UDP packets reach their logs
    internet, other, host = (
        (logs / f"{name}.log").read_text() for name in ("internet", "other", "host")
    )

    # Anti-spoofing: nothing sent as the victim left the bridge, neither by IP (through the
    # victim's NAT or bangerd's DNS forwarding) nor by MAC; the same packet with the
    # attacker's own MAC went through.
    assert "victim-itself" in internet
    assert "spoofed-ip" not in internet and "exfil" not in internet
    assert "spoofed-mac" not in internet
    assert "honest-mac" in internet
    neighbour = subprocess.run(
        env.netns.exec_argv(["ip", "neigh", "show", victim["ip"], "dev", "bgt1"]),
        capture_output=True, text=True, check=True,
    ).stdout
    assert attacker["mac"] not in neighbour
    assert env.run("vm", "ssh", "victim", "--", "hostname").stdout.strip() == "victim"

    # Guest -> host: only DNS; guest -> guest: only within the group; other networks: none.
    assert seen["host_listener"] == "" and "tcp" not in host
    assert seen["victim_ssh"] == ""
    assert seen["peer_ssh"].startswith("SSH-2.0")
    assert seen["other_network"] == "" and "tcp" not in other

    # Egress: the allowed name resolves and its address is reached, as is the allowed CIDR;
    # the other name is refused (never asked upstream) and the other address unreachable.
    assert seen["allowed_name"] == ALLOWED_IP
    assert seen["allowed_site"] == f"hello from {ALLOWED_IP}"
    assert seen["cidr_site"] == f"hello from {CIDR_IP}"
    assert seen["denied_name"] == ""
    assert "denied.test" not in internet
    assert seen["denied_site"] == "" and f"-> {DENIED_IP}:8080" not in internet

    # The rules are banger's own and go with the VMs.
    assert "eg_bgt1_" in nft(env, "inet") and "pre_bgt1" in nft(env, "bridge")
    for name in ("attacker", "peer", "victim"):
        env.run("vm", "delete", "--force", name)
    assert "bgt1" not in nft(env, "inet") and "bgt1" not in nft(env, "bridge")
