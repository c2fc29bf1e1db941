"""Reads the host's apt sources so image builds use the mirror the host already uses."""

from __future__ import annotations

from pathlib import Path

from banger.core.aptsources import AptSource, mmdebstrap_sources, parse_sources_file


def read_host_sources(root: Path = Path("/")) -> list[AptSource]:
    files = [root / "etc/apt/sources.list"]
    directory = root / "etc/apt/sources.list.d"
    if directory.is_dir():
        files += sorted(
            p for p in directory.iterdir() if p.suffix in (".list", ".sources")
        )
    sources: list[AptSource] = []
    for path in files:
        try:
            sources += parse_sources_file(path.name, path.read_text())
        except (OSError, UnicodeDecodeError):
            continue
    return sources


def host_apt_sources(suite: str, mirror: str | None, root: Path = Path("/")) -> list[str]:
    return mmdebstrap_sources(suite, mirror=mirror, host_sources=read_host_sources(root))
