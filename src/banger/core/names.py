"""VM names: DNS labels, so `<name>.vm` always resolves; generated ones read like calm-otter."""

from __future__ import annotations

import random
import re
from collections.abc import Container

from banger.core.errors import InvalidName

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

ADJECTIVES = (
    "amber", "bold", "brisk", "calm", "clever", "cosy", "crisp", "daring", "eager", "fair",
    "fond", "gentle", "glad", "grand", "happy", "hardy", "jolly", "keen", "kind", "lively",
    "lucky", "mellow", "merry", "misty", "nimble", "noble", "plucky", "proud", "quick", "quiet",
    "rapid", "shiny", "silent", "sleek", "snug", "spry", "steady", "sunny", "swift", "tidy",
    "vivid", "warm", "wise", "witty", "young", "zesty",
)
NOUNS = (
    "badger", "beaver", "bison", "crane", "dingo", "eagle", "falcon", "ferret", "finch", "fox",
    "gecko", "heron", "ibis", "koala", "lemur", "lynx", "marten", "mole", "moose", "newt",
    "ocelot", "otter", "owl", "panda", "puffin", "quail", "raven", "robin", "seal", "shrew",
    "sloth", "stoat", "swan", "tapir", "tiger", "toad", "trout", "viper", "walrus", "wombat",
    "wren", "yak", "zebra",
)


def validate_name(name: str) -> str:
    # fullmatch: with match, "$" also accepts a trailing newline.
    if not _LABEL.fullmatch(name):
        raise InvalidName(f"invalid name {name!r}")
    return name


def generate_name(taken: Container[str], rng: random.Random | None = None) -> str:
    """An unused adjective-noun name; falls back to a numeric suffix when unlucky."""
    rng = rng or random.Random()
    for _ in range(64):
        candidate = f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}"
        if candidate not in taken:
            return candidate
    base = f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}"
    suffix = 2
    while f"{base}-{suffix}" in taken:
        suffix += 1
    return f"{base}-{suffix}"
