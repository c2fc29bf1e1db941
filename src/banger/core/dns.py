"""The `.vm` DNS zone, sans-I/O: parse a query packet, decide, build the answer packet.

The server in `banger.host.dns` only moves bytes; every decision is here, so it can be tested
(and fuzzed) with plain values. Policy:

* `<name>.vm` of a running VM: an A record (TTL `TTL`); other types for that name: NOERROR
  with no answer (NODATA), so resolvers asking for AAAA do not give up on the A record.
* anything else under `.vm` (stopped or unknown VMs, deeper names): NXDOMAIN with the zone's
  SOA, whose minimum TTL keeps negative caching short.
* other zones: forwarded upstream when the caller allows it (a guest of ours asking), else
  REFUSED: bangerd is never an open resolver.
* packets that are not a single well-formed query: FORMERR if the header is readable, and
  dropped otherwise (also every response: answering those could start a loop).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

ZONE = "vm"
TTL = 5
MAX_QUERY = 4096
EDNS_PAYLOAD = 1232

TYPE_A = 1
TYPE_NS = 2
TYPE_SOA = 6
TYPE_OPT = 41
TYPE_ANY = 255
CLASS_IN = 1
CLASS_ANY = 255

OPCODE_QUERY = 0
NOERROR = 0
FORMERR = 1
SERVFAIL = 2
NXDOMAIN = 3
NOTIMP = 4
REFUSED = 5

_HEADER = struct.Struct("!HHHHHH")
_QR = 0x8000
_AA = 0x0400
_RD = 0x0100
_RA = 0x0080
_CD = 0x0010
_MAX_NAME = 255
_MAX_POINTER_HOPS = 16


class FormatError(ValueError):
    """The packet is not a DNS message we can read."""


@dataclass(frozen=True)
class Question:
    labels: tuple[bytes, ...]  # as sent: the answer echoes the asker's letter case
    qtype: int
    qclass: int

    @property
    def name(self) -> str:
        """Lower-case dotted name without the trailing dot ("" for the root)."""
        return ".".join(label.decode("ascii", "replace").lower() for label in self.labels)


@dataclass(frozen=True)
class Query:
    id: int
    flags: int
    question: Question
    edns: bool

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF


@dataclass(frozen=True)
class Reply:
    packet: bytes


@dataclass(frozen=True)
class Forward:
    """Send the query upstream unchanged and relay the matching answer (see `is_answer_to`)."""

    query: Query


Decision = Reply | Forward | None
Lookup = Callable[[str], str | None]


# Parsing


def read_name(packet: bytes, offset: int) -> tuple[tuple[bytes, ...], int]:
    """Read a (possibly compressed) name; return its labels and the offset after it."""
    labels: list[bytes] = []
    length_total = 1
    end: int | None = None
    hops = 0
    while True:
        if offset >= len(packet):
            raise FormatError("name runs past the end of the packet")
        length = packet[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(packet):
                raise FormatError("truncated compression pointer")
            target = ((length & 0x3F) << 8) | packet[offset + 1]
            hops += 1
            # Pointers must go backwards; with the hop limit, no loop can hold us.
            if target >= offset or hops > _MAX_POINTER_HOPS:
                raise FormatError("bad compression pointer")
            if end is None:
                end = offset + 2
            offset = target
            continue
        if length & 0xC0:
            raise FormatError("unknown label type")
        offset += 1
        if length == 0:
            return tuple(labels), end if end is not None else offset
        label = packet[offset:offset + length]
        if len(label) != length:
            raise FormatError("label runs past the end of the packet")
        length_total += length + 1
        if length_total > _MAX_NAME:
            raise FormatError("name longer than 255 bytes")
        labels.append(label)
        offset += length


def parse_query(packet: bytes) -> Query:
    """Parse a standard query with one question; additional records may carry EDNS (OPT)."""
    if len(packet) < _HEADER.size:
        raise FormatError("shorter than a DNS header")
    if len(packet) > MAX_QUERY:
        raise FormatError("oversized query")
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(packet)
    if flags & _QR:
        raise FormatError("a response, not a query")
    if qdcount != 1 or ancount or nscount:
        raise FormatError("expected exactly one question")
    labels, offset = read_name(packet, _HEADER.size)
    if offset + 4 > len(packet):
        raise FormatError("truncated question")
    qtype, qclass = struct.unpack_from("!HH", packet, offset)
    offset += 4
    edns = False
    for _ in range(arcount):
        rr_labels, offset = read_name(packet, offset)
        if offset + 10 > len(packet):
            raise FormatError("truncated additional record")
        rtype, _rclass, _ttl, rdlength = struct.unpack_from("!HHIH", packet, offset)
        offset += 10 + rdlength
        if offset > len(packet):
            raise FormatError("truncated record data")
        if rtype == TYPE_OPT:
            if rr_labels or edns:
                raise FormatError("misplaced or repeated OPT record")
            edns = True
    if offset != len(packet):
        raise FormatError("trailing bytes after the message")
    return Query(ident, flags, Question(labels, qtype, qclass), edns)


# Building


def encode_name(labels: tuple[bytes, ...]) -> bytes:
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\0"


def _record(owner: bytes, rtype: int, ttl: int, rdata: bytes) -> bytes:
    return owner + struct.pack("!HHIH", rtype, CLASS_IN, ttl, len(rdata)) + rdata


def _soa() -> bytes:
    rdata = (
        encode_name((b"ns", ZONE.encode()))
        + encode_name((b"hostmaster", ZONE.encode()))
        # serial, refresh, retry, expire, minimum (the negative-caching TTL)
        + struct.pack("!IIIII", 1, 3600, 600, 86400, TTL)
    )
    return _record(encode_name((ZONE.encode(),)), TYPE_SOA, TTL, rdata)


def _a_rdata(ip: str) -> bytes:
    parts = ip.split(".")
    if len(parts) != 4:
        raise ValueError(f"not an IPv4 address: {ip!r}")
    return bytes(int(part) for part in parts)


def build_response(
    query: Query, rcode: int, *, answers: tuple[bytes, ...] = (),
    authority: tuple[bytes, ...] = (), authoritative: bool = False,
    recursion_available: bool = False,
) -> bytes:
    flags = _QR | (query.flags & (0x7800 | _RD | _CD)) | rcode
    if authoritative:
        flags |= _AA
    if recursion_available:
        flags |= _RA
    additional = (
        (b"\0" + struct.pack("!HHIH", TYPE_OPT, EDNS_PAYLOAD, 0, 0),) if query.edns else ()
    )
    question = query.question
    return (
        _HEADER.pack(query.id, flags, 1, len(answers), len(authority), len(additional))
        + encode_name(question.labels)
        + struct.pack("!HH", question.qtype, question.qclass)
        + b"".join(answers) + b"".join(authority) + b"".join(additional)
    )


def _format_error(packet: bytes) -> bytes | None:
    """FORMERR for a packet with a readable query header; None when there is nothing to
    answer (too short, or itself a response)."""
    if len(packet) < _HEADER.size:
        return None
    ident, flags = struct.unpack_from("!HH", packet)
    if flags & _QR:
        return None
    return _HEADER.pack(ident, _QR | (flags & (0x7800 | _RD)) | FORMERR, 0, 0, 0, 0)


def servfail(query: Query, *, recursion_available: bool = True) -> bytes:
    return build_response(query, SERVFAIL, recursion_available=recursion_available)


# Deciding


def respond(packet: bytes, lookup: Lookup, *, may_forward: bool) -> Decision:
    """What to do with one incoming packet. `lookup` maps a lower-case VM name to its IP when
    it should resolve; `may_forward` says whether other zones may go upstream."""
    try:
        query = parse_query(packet)
    except FormatError:
        error = _format_error(packet)
        return Reply(error) if error is not None else None
    question = query.question
    if query.opcode != OPCODE_QUERY:
        return Reply(build_response(query, NOTIMP, recursion_available=may_forward))
    name = question.name
    in_zone = name == ZONE or name.endswith("." + ZONE)
    if not in_zone:
        if may_forward and question.qclass == CLASS_IN:
            return Forward(query)
        return Reply(build_response(query, REFUSED, recursion_available=may_forward))
    if question.qclass not in (CLASS_IN, CLASS_ANY):
        return Reply(build_response(query, REFUSED, authoritative=True))
    soa = _soa()
    if name == ZONE:
        answers = (soa,) if question.qtype in (TYPE_SOA, TYPE_ANY) else ()
        return Reply(build_response(
            query, NOERROR, answers=answers, authority=() if answers else (soa,),
            authoritative=True, recursion_available=may_forward,
        ))
    vm_name = name[: -len(ZONE) - 1]
    ip = lookup(vm_name) if "." not in vm_name else None
    if ip is None:
        return Reply(build_response(
            query, NXDOMAIN, authority=(soa,), authoritative=True,
            recursion_available=may_forward,
        ))
    if question.qtype in (TYPE_A, TYPE_ANY):
        # 0xC00C: a pointer to the question's name, right after the header.
        answer = _record(b"\xc0\x0c", TYPE_A, TTL, _a_rdata(ip))
        return Reply(build_response(
            query, NOERROR, answers=(answer,), authoritative=True,
            recursion_available=may_forward,
        ))
    return Reply(build_response(
        query, NOERROR, authority=(soa,), authoritative=True, recursion_available=may_forward,
    ))


def is_answer_to(query: Query, packet: bytes) -> bool:
    """Whether an upstream packet answers `query` (same id and question): anything else
    arriving on the forwarding socket is ignored."""
    if len(packet) < _HEADER.size:
        return False
    ident, flags, qdcount = struct.unpack_from("!HHH", packet)
    if ident != query.id or not flags & _QR or qdcount != 1:
        return False
    try:
        labels, offset = read_name(packet, _HEADER.size)
    except FormatError:
        return False
    if offset + 4 > len(packet):
        return False
    qtype, qclass = struct.unpack_from("!HH", packet, offset)
    asked = query.question
    return (
        [label.lower() for label in labels] == [label.lower() for label in asked.labels]
        and (qtype, qclass) == (asked.qtype, asked.qclass)
    )


def answer_addresses(packet: bytes) -> list[tuple[str, int]]:
    """The A records (address, TTL) in an upstream answer's answer section; [] for anything
    unreadable."""
    try:
        _, _, qdcount, ancount, _, _ = _HEADER.unpack_from(packet)
        offset = _HEADER.size
        for _ in range(qdcount):
            offset = read_name(packet, offset)[1] + 4
        found: list[tuple[str, int]] = []
        for _ in range(ancount):
            offset = read_name(packet, offset)[1]
            rtype, rclass, ttl, rdlength = struct.unpack_from("!HHIH", packet, offset)
            offset += 10
            rdata = packet[offset:offset + rdlength]
            offset += rdlength
            if rtype == TYPE_A and rclass == CLASS_IN and len(rdata) == 4:
                found.append((".".join(str(b) for b in rdata), ttl))
        return found
    except (FormatError, struct.error):
        return []


def refused(query: Query) -> bytes:
    return build_response(query, REFUSED)


def nameservers(resolv_conf: str, *, exclude: set[str]) -> list[str]:
    """IPv4 `nameserver` lines of a resolv.conf, minus `exclude` (our own address: forwarding
    to ourselves would loop)."""
    found: list[str] = []
    for line in resolv_conf.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            address = fields[1]
            parts = address.split(".")
            if (len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)
                    and address not in exclude and address not in found):
                found.append(address)
    return found
