"""Sources lists as an image build receives them."""

from __future__ import annotations

SOURCES = [
    "deb http://mirror.example.test/debian bookworm main",
    "deb http://mirror.example.test/debian bookworm-updates main",
    "deb http://mirror.example.test/debian-security bookworm-security main",
]
