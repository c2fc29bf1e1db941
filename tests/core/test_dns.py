from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from banger.core import dns
from tests.support.dns import a_records, header, query, rcode

VMS = {"sandbox": "172.16.0.2", "web": "172.16.0.3"}


def lookup(name: str) -> str | None:
    return VMS.get(name)


def reply(packet: bytes, *, may_forward: bool = False) -> bytes:
    decision = dns.respond(packet, lookup, may_forward=may_forward)
    assert isinstance(decision, dns.Reply)
    return decision.packet


def test_a_record_for_a_running_vm() -> None:
    packet = reply(query("sandbox.vm"))
    ident, flags, _, ancount, _, _ = header(packet)
    assert ident == 0x1234
    assert flags & 0x8000 and flags & 0x0400  # a response, authoritative
    assert flags & 0x0100  # recursion desired is echoed
    assert rcode(packet) == dns.NOERROR
    assert ancount == 1
    assert a_records(packet) == ["172.16.0.2"]


def test_names_match_case_insensitively_and_echo_the_askers_case() -> None:
    packet = reply(query("SandBox.VM"))
    assert a_records(packet) == ["172.16.0.2"]
    assert b"\x07SandBox\x02VM\x00" in packet


def test_unknown_and_deeper_names_are_nxdomain_with_the_soa() -> None:
    for name in ("stopped.vm", "a.sandbox.vm"):
        packet = reply(query(name))
        assert rcode(packet) == dns.NXDOMAIN
        assert header(packet)[3:5] == (0, 1)  # no answer, the SOA in authority


def test_other_types_for_a_known_name_are_nodata_not_nxdomain() -> None:
    packet = reply(query("sandbox.vm", qtype=28))  # AAAA
    assert rcode(packet) == dns.NOERROR
    assert header(packet)[3] == 0


def test_any_query_gets_the_a_record() -> None:
    assert a_records(reply(query("web.vm", qtype=dns.TYPE_ANY))) == ["172.16.0.3"]


def test_zone_apex_answers_soa() -> None:
    packet = reply(query("vm", qtype=dns.TYPE_SOA))
    assert rcode(packet) == dns.NOERROR
    assert header(packet)[3] == 1


def test_other_zones_are_refused_unless_forwarding_is_allowed() -> None:
    assert rcode(reply(query("example.com"))) == dns.REFUSED
    decision = dns.respond(query("example.com"), lookup, may_forward=True)
    assert isinstance(decision, dns.Forward)
    assert decision.query.question.name == "example.com"
    # Names of our own zone never leave the host.
    assert isinstance(dns.respond(query("nope.vm"), lookup, may_forward=True), dns.Reply)


def test_edns_queries_get_an_opt_record_back() -> None:
    packet = reply(query("sandbox.vm", edns=True))
    assert header(packet)[5] == 1
    assert packet.endswith(b"\0" + struct.pack("!HHIH", dns.TYPE_OPT, dns.EDNS_PAYLOAD, 0, 0))


def test_non_query_opcodes_are_not_implemented() -> None:
    packet = reply(query("sandbox.vm", flags=2 << 11))  # STATUS
    assert rcode(packet) == dns.NOTIMP


def test_malformed_queries_get_formerr_and_responses_are_dropped() -> None:
    truncated = query("sandbox.vm")[:-3]
    assert rcode(reply(truncated)) == dns.FORMERR
    assert dns.respond(b"\x00\x01", lookup, may_forward=False) is None
    response = reply(query("sandbox.vm"))
    assert dns.respond(response, lookup, may_forward=False) is None
    oversized = query("sandbox.vm") + b"\0" * dns.MAX_QUERY
    assert rcode(reply(oversized)) == dns.FORMERR


def test_compression_pointer_loops_are_rejected() -> None:
    looping = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c" + b"\0\x01\0\x01"
    assert rcode(reply(looping)) == dns.FORMERR


def test_is_answer_to_matches_id_and_question() -> None:
    asked = dns.parse_query(query("example.com", ident=7))
    upstream = dns.build_response(asked, dns.NOERROR)
    assert dns.is_answer_to(asked, upstream)
    assert not dns.is_answer_to(asked, dns.build_response(
        dns.parse_query(query("example.org", ident=7)), dns.NOERROR))
    assert not dns.is_answer_to(asked, query("example.com", ident=7))  # not a response
    assert not dns.is_answer_to(asked, b"junk")


def test_nameservers_from_resolv_conf() -> None:
    text = (
        "# generated\nnameserver 10.0.0.53\nnameserver 172.16.0.1\nnameserver ::1\n"
        "search example\nnameserver 10.0.0.53\nnameserver 999.1.1.1\n"
    )
    assert dns.nameservers(text, exclude={"172.16.0.1"}) == ["10.0.0.53"]


@given(st.binary(max_size=600))
def test_fuzz_arbitrary_bytes_never_crash(packet: bytes) -> None:
    decision = dns.respond(packet, lookup, may_forward=True)
    if isinstance(decision, dns.Reply):
        assert decision.packet[:2] == packet[:2]
        assert header(decision.packet)[1] & 0x8000


label = st.binary(min_size=1, max_size=63)


@given(
    st.lists(label, min_size=0, max_size=6), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF),
    st.booleans(), st.integers(0, 0xFFFF), st.binary(max_size=40), st.integers(0, 40),
)
def test_fuzz_structured_queries_and_mutations(
    labels: list[bytes], qtype: int, ident: int, edns: bool, flags: int, junk: bytes,
    cut: int,
) -> None:
    packet = struct.pack("!HHHHHH", ident, flags & 0x7FFF, 1, 0, 0, 1 if edns else 0)
    packet += dns.encode_name(tuple(labels)) + struct.pack("!HH", qtype, dns.CLASS_IN)
    if edns:
        packet += b"\0" + struct.pack("!HHIH", dns.TYPE_OPT, 4096, 0, 0)
    for candidate in (packet, packet + junk, packet[: max(0, len(packet) - cut)]):
        decision = dns.respond(candidate, lookup, may_forward=False)
        assert decision is None or isinstance(decision, dns.Reply)
        if isinstance(decision, dns.Reply):
            assert len(decision.packet) <= 512 + 255
            _, _, qd, an, ns, ar = header(decision.packet)
            assert qd in (0, 1) and an <= 1 and ns <= 1 and ar <= 1


def test_answer_addresses_reads_the_a_records_and_their_ttls() -> None:
    asked = dns.parse_query(query("www.example.org"))
    cname = b"\xc0\x0c" + struct.pack("!HHIH", 5, dns.CLASS_IN, 300, 2) + b"\xc0\x0c"
    a = b"\xc0\x0c" + struct.pack("!HHIH", dns.TYPE_A, dns.CLASS_IN, 42, 4) + bytes([192, 0, 2, 7])
    packet = dns.build_response(asked, dns.NOERROR, answers=(cname, a))
    assert dns.answer_addresses(packet) == [("192.0.2.7", 42)]
    assert dns.answer_addresses(packet[:-3]) == []
    assert dns.answer_addresses(b"\x00") == []


@given(st.binary(max_size=200))
def test_answer_addresses_never_raises(packet: bytes) -> None:
    dns.answer_addresses(packet)
