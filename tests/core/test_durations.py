from __future__ import annotations

import pytest

from banger.core.config import Config, parse_config
from banger.core.durations import format_duration, parse_duration
from banger.core.errors import ConfigError, InvalidInput


@pytest.mark.parametrize(("text", "seconds"), [
    ("10s", 10), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("1.5h", 5400), ("90", 90),
    ("1d", 86400), (" 5 m ", 300), ("250ms", 0.25),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "10x", "0s", "-5m", "5m junk", "m5"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_duration(text)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 59, 60, 3600, 5400, 90061)] == [
        "0s", "59s", "1m", "1h", "1h30m", "1d1h1m1s",
    ]


def test_integration_config_defaults() -> None:
    config = Config()
    assert config.stats_poll_seconds == 10
    assert config.auto_stop_seconds is None
    assert config.dns_upstreams is None


def test_integration_config_keys() -> None:
    config = parse_config(
        'stats_poll_interval = "3s"\nauto_stop_stale_after = "2h"\n'
        'dns_upstreams = ["192.0.2.53"]\n'
    )
    assert (config.stats_poll_seconds, config.auto_stop_seconds) == (3, 7200)
    assert config.dns_upstreams == ["192.0.2.53"]
    assert parse_config("dns_upstreams = []").dns_upstreams == []


@pytest.mark.parametrize(("text", "key"), [
    ('auto_stop_stale_after = "soon"', "auto_stop_stale_after"),
    ('stats_poll_interval = "0s"', "stats_poll_interval"),
    ('dns_upstreams = ["dns.example"]', "dns_upstreams"),
])
def test_bad_integration_config_names_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        parse_config(text)
