from __future__ import annotations

from banger.core import nat
from banger.core.nat import NatGuest


def test_rules_touch_only_this_bridges_chains_in_bangers_table() -> None:
    script = nat.render_rules("banger0", [NatGuest("b", "172.16.0.3"), NatGuest("a", "172.16.0.2")])
    lines = script.splitlines()
    assert lines[0] == "add table inet banger"
    assert "flush chain inet banger nat_banger0" in lines
    assert "flush chain inet banger fwd_banger0" in lines
    for line in lines:
        assert " inet banger " in line or line == "add table inet banger"
        assert "flush ruleset" not in line and "delete table" not in line
    masquerades = [line for line in lines if "masquerade" in line]
    assert masquerades == [
        'add rule inet banger nat_banger0 ip saddr 172.16.0.2 oifname != "banger0" '
        'masquerade comment "banger vm a"',
        'add rule inet banger nat_banger0 ip saddr 172.16.0.3 oifname != "banger0" '
        'masquerade comment "banger vm b"',
    ]
    assert sum(" accept comment" in line for line in lines) == 4


def test_rules_for_no_guests_leave_empty_chains() -> None:
    script = nat.render_rules("banger0", [])
    assert "add rule" not in script


def test_removal_is_valid_whether_or_not_the_chains_exist() -> None:
    lines = nat.render_removal("bgt1").splitlines()
    assert lines[-2:] == ["delete chain inet banger nat_bgt1", "delete chain inet banger fwd_bgt1"]
    assert any(line.startswith("add chain inet banger nat_bgt1 ") for line in lines)


def test_chain_names_are_nft_identifiers() -> None:
    assert nat.chain_names("br-dev.1") == ("nat_br_dev_1", "fwd_br_dev_1")


def test_table_is_empty() -> None:
    assert nat.table_is_empty("table inet banger {\n}\n")
    assert not nat.table_is_empty("table inet banger {\n\tchain nat_bgt1 {\n\t}\n}\n")
