from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from banger.core.errors import InvalidInput
from banger.core.units import GIB, MIB, format_size, parse_size

POWERS = {"K": 1, "M": 2, "G": 3, "T": 4}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8G", 8 * GIB),
        ("8g", 8 * GIB),
        ("8GiB", 8 * GIB),
        ("8gb", 8 * GIB),
        (" 8 G ", 8 * GIB),
        ("512M", 512 * MIB),
        ("1.5G", 3 * GIB // 2),
        ("1K", 1024),
        ("2T", 2 * 1024**4),
        ("4096", 4096),
        ("10B", 10),
        (4096, 4096),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "G", "8X", "-1G", "8 G B", "1e9", "eight", "8GG", "0x10"])
def test_unparseable_sizes_name_what_was_parsed(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_size(text, what="disk size")
    assert info.value.message.startswith("invalid disk size")
    assert "8G" in info.value.hint


@pytest.mark.parametrize("text", ["0", "0G", "0.0001K", 0, -5])
def test_sizes_must_be_positive(text: str | int) -> None:
    with pytest.raises(InvalidInput, match="must be positive"):
        parse_size(text)


@given(st.integers(min_value=1, max_value=1023), st.sampled_from(sorted(POWERS)))
def test_suffixes_are_binary(number: int, unit: str) -> None:
    assert parse_size(f"{number}{unit}") == number * 1024 ** POWERS[unit]
    assert parse_size(f"{number}{unit.lower()}iB") == number * 1024 ** POWERS[unit]


@given(st.integers(min_value=1, max_value=1023), st.sampled_from(sorted(POWERS)))
def test_format_size_round_trips_whole_units(number: int, unit: str) -> None:
    size = number * 1024 ** POWERS[unit]
    text = format_size(size)
    assert text == f"{number}{unit}"
    assert parse_size(text) == size


@given(st.integers(min_value=1, max_value=2**50))
def test_format_size_is_close_to_the_value(size: int) -> None:
    text = format_size(size)
    # One decimal at most: the parsed value is within 5% of the original.
    assert abs(parse_size(text) - size) <= size * 0.05


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0B"), (1, "1B"), (1023, "1023B"), (1024, "1K"), (1536 * MIB, "1.5G"), (8 * GIB, "8G")],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text
