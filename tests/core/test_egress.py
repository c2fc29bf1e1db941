from __future__ import annotations

import pytest

from banger.core import egress
from banger.core.errors import InvalidInput


def test_entries_split_into_networks_and_names() -> None:
    allow = egress.parse_egress_allow(["example.org,10.1.0.0/16", " *.Example.NET. ", "192.0.2.7"])
    assert allow.cidrs == ("10.1.0.0/16", "192.0.2.7")
    assert allow.names == ("example.org", "*.example.net")
    assert egress.normalize_egress_allow(["a.test,a.test", ""]) == ["a.test"]


@pytest.mark.parametrize("bad", ["example", "10.0.0.0/33", "999.1.1.1", "ex ample.org", "-a.org",
                                 "::1"])
def test_bad_entries_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput, match="egress"):
        egress.parse_egress_allow([bad])


def test_names_match_exactly_or_under_a_wildcard() -> None:
    allow = egress.parse_egress_allow(["example.org,*.pkg.test"])
    assert allow.permits_name("example.org")
    assert not allow.permits_name("www.example.org")
    assert not allow.permits_name("badexample.org")
    assert allow.permits_name("a.b.pkg.test")
    assert not allow.permits_name("pkg.test") and not allow.permits_name("xpkg.test")


def test_describe_and_timeouts() -> None:
    assert egress.describe(True, ["x.org"]) == "all (nat)"
    assert egress.describe(False, ["x.org", "10.0.0.0/8"]) == "only x.org, 10.0.0.0/8"
    assert egress.describe(False, []) == "none"
    assert egress.allow_seconds(0) == egress.MIN_ALLOW_SECONDS
    assert egress.allow_seconds(300) == 300
    assert egress.allow_seconds(10**9) == egress.MAX_ALLOW_SECONDS


def test_groups() -> None:
    assert egress.validate_group("web-1") == "web-1"
    assert egress.validate_group("") == ""
    for bad in ("-web", "Web", "a" * 33):
        with pytest.raises(InvalidInput):
            egress.validate_group(bad)
