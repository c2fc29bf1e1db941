"""Runs as root inside the attacker guest of the network containment test (standard library
only, sent over `vm ssh` on stdin). It tries what a hostile guest would, and prints one JSON
object: what it saw. What the targets saw is in their own logs, on the host's side.

    python3 - '{"victim_ip": ..., ...}' < guest_attacker.py
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import time


def tcp(host: str, port: int) -> str:
    """The greeting a TCP port gave ("" when it could not be reached)."""
    try:
        with socket.create_connection((host, port), timeout=3) as sock:
            return sock.recv(100).decode().strip() or "connected"
    except OSError:
        return ""


def resolve(name: str) -> str:
    try:
        return socket.gethostbyname(name)
    except OSError:
        return ""


def dns_query(name: str) -> bytes:
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + question + b"\0\1\0\1"


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def checksum(data: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(src_mac: str, dst_mac: str, src: str, dst: str, port: int, data: bytes) -> bytes:
    """An Ethernet frame with a UDP packet in it, any addresses we like (UDP checksum 0:
    none, which IPv4 allows)."""
    udp = struct.pack("!HHHH", 40000, port, 8 + len(data), 0) + data
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return mac_bytes(dst_mac) + mac_bytes(src_mac) + b"\x08\x00" + header + udp


def arp_reply(src_mac: str, claimed_ip: str, dst_mac: str, dst_ip: str) -> bytes:
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, mac_bytes(src_mac),
                      socket.inet_aton(claimed_ip), mac_bytes(dst_mac), socket.inet_aton(dst_ip))
    return mac_bytes(dst_mac) + mac_bytes(src_mac) + b"\x08\x06" + arp


def interface_of(mac: str) -> str:
    for name in os.listdir("/sys/class/net"):
        with open(f"/sys/class/net/{name}/address") as f:
            if f.read().strip() == mac:
                return name
    raise SystemExit(f"no interface with MAC {mac}")


def main() -> None:
    a = json.loads(sys.argv[1])
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    raw.bind((interface_of(a["own_mac"]), 0))
    seen: dict[str, str] = {}

    # Spoofing: another guest's IP (that guest has NAT), another guest's MAC, ARP for its IP.
    raw.send(udp_frame(a["own_mac"], a["gateway_mac"], a["victim_ip"], a["spoof_target"], 9000,
                       b"spoofed-ip"))
    raw.send(udp_frame(a["own_mac"], a["gateway_mac"], a["victim_ip"], a["gateway"], 53,
                       dns_query("exfil.test")))
    raw.send(udp_frame(a["victim_mac"], a["gateway_mac"], a["own_ip"], a["cidr_target"], 9000,
                       b"spoofed-mac"))
    raw.send(udp_frame(a["own_mac"], a["gateway_mac"], a["own_ip"], a["cidr_target"], 9000,
                       b"honest-mac"))
    for _ in range(4):
        for destination in (a["gateway_mac"], "ff:ff:ff:ff:ff:ff"):
            raw.send(arp_reply(a["own_mac"], a["victim_ip"], destination, a["gateway"]))
        time.sleep(0.6)

    # Reaching the host, other guests and other networks.
    seen["host_listener"] = tcp(a["gateway"], a["host_port"])
    seen["victim_ssh"] = tcp(a["victim_ip"], 22)
    seen["peer_ssh"] = tcp(a["peer_ip"], 22)
    seen["other_network"] = tcp(a["other_network"], 8080)

    # Egress: an allowed name, a CIDR, and what is neither.
    seen["allowed_name"] = resolve("allowed.test")
    seen["allowed_site"] = tcp(seen["allowed_name"], 8080) if seen["allowed_name"] else ""
    seen["denied_name"] = resolve("denied.test")
    seen["cidr_site"] = tcp(a["cidr_target"], 8080)
    seen["denied_site"] = tcp(a["spoof_target"], 8080)
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
