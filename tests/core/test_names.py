from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from banger.core.errors import InvalidName
from banger.core.names import ADJECTIVES, NOUNS, generate_name, validate_name

LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True)
ALL_PAIRS = {f"{a}-{n}" for a in ADJECTIVES for n in NOUNS}


@given(LABEL)
def test_dns_labels_are_valid_names(name: str) -> None:
    assert validate_name(name) == name


@given(st.text(max_size=70))
def test_accepted_names_are_dns_labels(name: str) -> None:
    try:
        validate_name(name)
    except InvalidName:
        return
    assert 1 <= len(name) <= 63
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    assert not name.startswith("-")
    assert not name.endswith("-")


@pytest.mark.parametrize(
    "name",
    [
        "",
        "-dev",
        "dev-",
        "Dev",
        "dev_box",
        "dev.box",
        "dev box",
        "dév",
        "a" * 64,
        # A trailing newline would split known_hosts lines and the kernel command line.
        "dev\n",
        "dev\nother",
    ],
)
def test_invalid_names_are_rejected_with_a_hint(name: str) -> None:
    with pytest.raises(InvalidName) as info:
        validate_name(name)
    assert info.value.code == "invalid_name"
    assert "DNS label" in info.value.hint


@pytest.mark.parametrize("name", ["a", "0", "a" * 63, "dev-1", "1-2-3", "x--y"])
def test_edge_case_names_are_valid(name: str) -> None:
    assert validate_name(name) == name


def test_generated_names_are_adjective_noun() -> None:
    rng = random.Random(7)
    for _ in range(200):
        name = generate_name(set(), rng)
        adjective, noun = name.split("-")
        assert adjective in ADJECTIVES
        assert noun in NOUNS
        validate_name(name)


@given(st.sets(st.sampled_from(sorted(ALL_PAIRS)), max_size=len(ALL_PAIRS)), st.integers())
def test_generated_names_avoid_taken_names(taken: set[str], seed: int) -> None:
    name = generate_name(taken, random.Random(seed))
    assert name not in taken
    validate_name(name)


def test_generation_falls_back_to_a_numeric_suffix_when_every_pair_is_taken() -> None:
    taken = set(ALL_PAIRS) | {f"{pair}-2" for pair in ALL_PAIRS}
    name = generate_name(taken, random.Random(1))
    assert name not in taken
    assert re.fullmatch(r"[a-z]+-[a-z]+-3", name)
    validate_name(name)


def test_every_word_makes_a_valid_name() -> None:
    for pair in ALL_PAIRS:
        validate_name(pair)
