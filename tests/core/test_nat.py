from __future__ import annotations

from banger.core import nat
from banger.core.nat import GuestNet

A = GuestNet("a", "aaa", "172.16.0.2", "02:00:00:00:00:0a", "bgraaa", group="web")
B = GuestNet("b", "bbb", "172.16.0.3", "02:00:00:00:00:0b", "bgrbbb", nat=True, group="web")
C = GuestNet("c", "ccc", "172.16.0.4", "02:00:00:00:00:0c", "bgrccc",
             allow_cidrs=("10.1.0.0/16",), allow_names=True)


def rules(
    *guests: GuestNet, quarantined_taps: tuple[str, ...] = (), existing_sets: tuple[str, ...] = (),
) -> list[str]:
    return nat.render_rules(
        "banger0", "172.16.0.1", list(guests), quarantined_taps=quarantined_taps,
        existing_sets=existing_sets,
    ).splitlines()


def test_rules_touch_only_this_bridges_chains_in_bangers_tables() -> None:
    lines = rules(B, A, C)
    assert lines[0] == "add table inet banger"
    for chain in ("nat_banger0", "fwd_banger0", "in_banger0"):
        assert f"flush chain inet banger {chain}" in lines
    for chain in ("pre_banger0", "fwd_banger0"):
        assert f"flush chain bridge banger {chain}" in lines
    for line in lines:
        assert " inet banger" in line or " bridge banger" in line
        assert "flush ruleset" not in line and "delete table" not in line


def test_each_tap_sends_only_from_its_own_mac_and_ip() -> None:
    lines = rules(A)
    assert (
        'add rule bridge banger pre_banger0 iifname "bgraaa" ether saddr 02:00:00:00:00:0a '
        'arp saddr ether 02:00:00:00:00:0a arp saddr ip 172.16.0.2 accept comment "banger vm a"'
    ) in lines
    assert (
        'add rule bridge banger pre_banger0 iifname "bgraaa" ether saddr 02:00:00:00:00:0a '
        'ip saddr 172.16.0.2 accept comment "banger vm a"'
    ) in lines
    # Everything else from our TAPs, and all of a quarantined TAP, is dropped.
    lines = rules(A, quarantined_taps=("bgrnew",))
    assert 'add rule bridge banger pre_banger0 iifname { "bgraaa", "bgrnew" } drop' in lines


def test_guests_reach_each_other_only_within_a_group() -> None:
    lines = [line for line in rules(A, B, C)
             if line.startswith("add rule bridge banger fwd_banger0")]
    assert lines == [
        'add rule bridge banger fwd_banger0 iifname { "bgraaa", "bgrbbb" } '
        'oifname { "bgraaa", "bgrbbb" } accept comment "banger group web"',
        'add rule bridge banger fwd_banger0 iifname { "bgraaa", "bgrbbb", "bgrccc" } drop',
    ]
    lonely = rules(A, C)
    assert not any("banger group" in line for line in lonely)  # a group of one


def test_the_host_serves_guests_only_dns() -> None:
    lines = [line for line in rules(A) if " in_banger0 " in line and "add rule" in line]
    assert lines == [
        'add rule inet banger in_banger0 iifname "banger0" ct state established,related accept',
        'add rule inet banger in_banger0 iifname "banger0" ip daddr 172.16.0.1 '
        "meta l4proto { tcp, udp } th dport 53 accept",
        'add rule inet banger in_banger0 iifname "banger0" drop',
    ]


def test_egress_follows_each_guests_policy() -> None:
    lines = [line for line in rules(A, B, C) if "inet banger fwd_banger0" in line
             and "add rule" in line]
    out = 'iifname "banger0" oifname != "banger0"'
    assert lines == [
        'add rule inet banger fwd_banger0 oifname "banger0" iifname != "banger0" '
        "ct state established,related accept",
        'add rule inet banger fwd_banger0 oifname "banger0" iifname != "banger0" drop',
        f"add rule inet banger fwd_banger0 {out} ct state established,related accept",
        f'add rule inet banger fwd_banger0 {out} ip saddr 172.16.0.3 accept comment "banger vm b"',
        f"add rule inet banger fwd_banger0 {out} ip saddr 172.16.0.4 ip daddr {{ 10.1.0.0/16 }} "
        'accept comment "banger vm c"',
        f"add rule inet banger fwd_banger0 {out} ip saddr 172.16.0.4 ip daddr "
        '@eg_banger0_ccc accept comment "banger vm c"',
        f"add rule inet banger fwd_banger0 {out} drop",
    ]
    masquerades = [line for line in rules(A, B, C) if "masquerade" in line]
    assert [m.split()[7] for m in masquerades] == ["172.16.0.3", "172.16.0.4"]


def test_allow_sets_are_made_kept_and_deleted() -> None:
    script = rules(C, existing_sets=("eg_banger0_ccc", "eg_banger0_gone", "eg_bgt1_other"))
    assert "add set inet banger eg_banger0_ccc { type ipv4_addr; flags timeout; }" in script
    assert "delete set inet banger eg_banger0_gone" in script
    assert not any("eg_bgt1_other" in line or "delete set inet banger eg_banger0_ccc" in line
                   for line in script)
    assert script[-1] == "delete set inet banger eg_banger0_gone"  # after the flushes


def test_rules_for_no_guests_have_no_drop() -> None:
    assert not any("pre_banger0 iifname" in line for line in rules())


def test_removal_is_valid_whether_or_not_the_chains_exist() -> None:
    lines = nat.render_removal("bgt1", ["eg_bgt1_x", "eg_banger0_y"]).splitlines()
    assert lines[-6:] == [
        "delete chain inet banger nat_bgt1", "delete chain inet banger fwd_bgt1",
        "delete chain inet banger in_bgt1", "delete chain bridge banger pre_bgt1",
        "delete chain bridge banger fwd_bgt1", "delete set inet banger eg_bgt1_x",
    ]
    assert any(line.startswith("add chain bridge banger pre_bgt1 ") for line in lines)
    assert nat.render_removal("bgt1", [], ["inet"]).splitlines()[-1] == "delete table inet banger"


def test_holds_only_this_bridges_chains_and_sets() -> None:
    ours = "table inet banger {\n\tset eg_bgt1_x {\n\t\ttype ipv4_addr\n\t}\n" \
        "\tchain nat_bgt1 {\n\t\tip saddr 10.0.0.2 masquerade\n\t}\n}\n"
    assert nat.holds_only(ours, "bgt1") and nat.holds_only("", "bgt1")
    assert not nat.holds_only(ours, "banger0")
    assert not nat.holds_only(ours.replace("eg_bgt1_x", "eg_bgt2_x"), "bgt1")


def test_allow_restarts_the_timeout() -> None:
    assert nat.render_allow("banger0", "ccc", [("192.0.2.7", 60)]).splitlines() == [
        "add table inet banger",
        "add set inet banger eg_banger0_ccc { type ipv4_addr; flags timeout; }",
        "add element inet banger eg_banger0_ccc { 192.0.2.7 }",
        "delete element inet banger eg_banger0_ccc { 192.0.2.7 }",
        "add element inet banger eg_banger0_ccc { 192.0.2.7 timeout 60s }",
    ]
    assert nat.render_allow("banger0", "ccc", []) == ""


def test_chain_names_are_nft_identifiers() -> None:
    assert nat.chain_names("br-dev.1").nat == "nat_br_dev_1"
    assert nat.allow_set_name("br-dev.1", "ab12") == "eg_br_dev_1_ab12"


def test_listings() -> None:
    assert nat.table_is_empty("table inet banger {\n}\n")
    listing = "table inet banger {\n\tset eg_b_x {\n\t}\n\tchain nat_bgt1 {\n\t}\n}\n"
    assert not nat.table_is_empty(listing)
    assert nat.set_names(listing) == ["eg_b_x"]
    assert nat.chain_listed(listing, "nat_bgt1") and not nat.chain_listed(listing, "nat_b")
