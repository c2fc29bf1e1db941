"""DNS packets for tests: a query to send, and reading the rcode and A records of an answer."""

from __future__ import annotations

import struct

from banger.core import dns


def query(
    name: str, qtype: int = dns.TYPE_A, *, ident: int = 0x1234, edns: bool = False,
    flags: int = 0x0100, qclass: int = dns.CLASS_IN,
) -> bytes:
    labels = tuple(part.encode() for part in name.split(".") if part)
    packet = struct.pack("!HHHHHH", ident, flags, 1, 0, 0, 1 if edns else 0)
    packet += dns.encode_name(labels) + struct.pack("!HH", qtype, qclass)
    if edns:
        packet += b"\0" + struct.pack("!HHIH", dns.TYPE_OPT, 4096, 0, 0)
    return packet


def header(packet: bytes) -> tuple[int, int, int, int, int, int]:
    fields: tuple[int, int, int, int, int, int] = struct.unpack_from("!HHHHHH", packet)
    return fields


def rcode(packet: bytes) -> int:
    return header(packet)[1] & 0xF


def a_records(packet: bytes) -> list[str]:
    _, _, qd, an, _, _ = header(packet)
    assert qd == 1
    _, offset = dns.read_name(packet, 12)
    offset += 4
    found = []
    for _ in range(an):
        _, offset = dns.read_name(packet, offset)
        rtype, _, ttl, length = struct.unpack_from("!HHIH", packet, offset)
        offset += 10
        if rtype == dns.TYPE_A:
            assert ttl == dns.TTL
            found.append(".".join(str(b) for b in packet[offset:offset + length]))
        offset += length
    return found
