"""Which Debian archive to build images from, read from the host's apt sources.

The image builder uses the mirrors the host already trusts (or the ``debian_mirror`` config
key), never a built-in host name: many machines only reach a local or proxied mirror. This
module parses the text of apt sources files in both formats apt reads: one-line
``sources.list`` entries and deb822 ``.sources`` stanzas. The caller reads the files.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from banger.core.errors import ImageBuildFailed

_USABLE_SCHEMES = ("http://", "https://", "file:")
_MIRROR_HINT = (
    "set `debian_mirror` in ~/.config/banger/config.toml to a Debian archive URI "
    "(e.g. http://<mirror>/debian), or add a Debian entry to /etc/apt/sources.list.d/"
)


@dataclass(frozen=True)
class AptSource:
    """One source entry: a one-line ``deb`` line or a deb822 stanza (which may list several
    types, URIs and suites)."""

    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    enabled: bool = True


@dataclass(frozen=True)
class DebianArchives:
    """Base URIs of the archive (for ``<suite>`` and ``<suite>-updates``) and of the security
    archive (``<suite>-security``); ``security`` is None when none is known."""

    main: str
    security: str | None


def parse_one_line(text: str) -> list[AptSource]:
    """Entries of a one-line ``sources.list``: ``deb [opts] URI SUITE [COMPONENT...]``."""
    found: list[AptSource] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        kind, _, rest = line.partition(" ")
        rest = rest.strip()
        if rest.startswith("["):
            closing = rest.find("]")
            if closing < 0:
                continue
            rest = rest[closing + 1 :]
        words = rest.split()
        if len(words) < 2:
            continue
        found.append(
            AptSource(
                types=(kind,),
                uris=(words[0],),
                suites=(words[1],),
                components=tuple(words[2:]),
            )
        )
    return found


def parse_deb822(text: str) -> list[AptSource]:
    """Stanzas of a deb822 ``.sources`` file. Field names are case-insensitive; continuation
    lines (for example an inline Signed-By key) are skipped; comments do not end a stanza."""
    found: list[AptSource] = []
    for stanza in _stanzas(text):
        types = stanza.get("types", "").split()
        uris = stanza.get("uris", "").split()
        suites = stanza.get("suites", "").split()
        if not (types and uris and suites):
            continue
        enabled = stanza.get("enabled", "yes").strip().lower() not in ("no", "false", "0")
        found.append(
            AptSource(
                types=tuple(types),
                uris=tuple(uris),
                suites=tuple(suites),
                components=tuple(stanza.get("components", "").split()),
                enabled=enabled,
            )
        )
    return found


def _stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
                current = {}
            continue
        if line[0] in " \t":
            continue
        name, sep, value = line.partition(":")
        if sep:
            current[name.strip().lower()] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def parse_sources_file(name: str, text: str) -> list[AptSource]:
    """Parse one file the way apt does: ``*.sources`` is deb822, anything else one-line."""
    return parse_deb822(text) if name.endswith(".sources") else parse_one_line(text)


def find_archives(sources: Iterable[AptSource], suite: str) -> DebianArchives:
    """The archive that carries ``suite`` (or ``<suite>-updates``) and the security archive
    (``<suite>-security``, or a URI under ``/debian-security``).

    Raises ImageBuildFailed when no enabled binary entry carries the suite.
    """
    sources = list(sources)
    main, security = _scan(sources, suite)
    if main is None:
        # A Debian archive carries every suite under one URI: a bookworm host can build
        # trixie from its own mirror.
        main = _any_debian_archive(sources)
        if main is not None:
            security = security_for_mirror(main)
    if main is None:
        raise ImageBuildFailed(
            f"no Debian {suite} archive found in the host's apt sources", hint=_MIRROR_HINT
        )
    return DebianArchives(main=main, security=security)


def _scan(sources: Iterable[AptSource], suite: str) -> tuple[str | None, str | None]:
    main_exact: str | None = None
    main_updates: str | None = None
    security: str | None = None
    for source in sources:
        if not source.enabled or "deb" not in source.types:
            continue
        if source.components and "main" not in source.components:
            continue
        for uri in source.uris:
            if not uri.startswith(_USABLE_SCHEMES):
                continue
            base = uri.rstrip("/")
            if f"{suite}-security" in source.suites or "/debian-security" in base:
                security = security or base
            elif suite in source.suites:
                main_exact = main_exact or base
            elif f"{suite}-updates" in source.suites:
                main_updates = main_updates or base
    return main_exact or main_updates, security


def security_for_mirror(mirror: str) -> str | None:
    """Guess the security archive that sits beside a configured Debian mirror: the last
    ``debian`` path segment becomes ``debian-security`` (works for plain mirrors and for
    snapshot-style URIs such as ``.../archive/debian/<timestamp>``)."""
    scheme, sep, rest = mirror.rstrip("/").partition("://")
    if not sep:
        return None
    segments = rest.split("/")
    for index in range(len(segments) - 1, 0, -1):
        if segments[index] == "debian":
            segments[index] = "debian-security"
            return f"{scheme}://{'/'.join(segments)}"
    return None


def mmdebstrap_sources(
    suite: str, *, mirror: str | None = None, host_sources: Iterable[AptSource] = ()
) -> list[str]:
    """One-line ``deb URI SUITE main`` entries for mmdebstrap: the suite, ``-updates`` and
    ``-security``.

    A configured ``mirror`` wins for the suite and ``-updates``; its security archive is
    derived from it (see ``security_for_mirror``) or else taken from the host. Without an
    override everything comes from ``host_sources``. The security entry is left out when no
    security archive is known.
    """
    host = list(host_sources)
    if mirror is not None:
        mirror = mirror.strip().rstrip("/")
        if not mirror.startswith(_USABLE_SCHEMES):
            raise ImageBuildFailed(
                f"debian_mirror {mirror!r} is not an http(s):// or file: URI", hint=_MIRROR_HINT
            )
        security = security_for_mirror(mirror) or _scan(host, suite)[1]
        archives = DebianArchives(main=mirror, security=security)
    else:
        archives = find_archives(host, suite)
    lines = [
        f"deb {archives.main} {suite} main",
        f"deb {archives.main} {suite}-updates main",
    ]
    if archives.security is not None:
        lines.append(f"deb {archives.security} {suite}-security main")
    return lines


def _any_debian_archive(sources: Iterable[AptSource]) -> str | None:
    for source in sources:
        if not source.enabled or "deb" not in source.types:
            continue
        if source.components and "main" not in source.components:
            continue
        for uri in source.uris:
            base = uri.rstrip("/")
            if uri.startswith(_USABLE_SCHEMES) and base.endswith("/debian"):
                return base
    return None


def archive_for_suite(
    suite: str, *, mirror: str | None = None, host_sources: Iterable[AptSource] = ()
) -> str:
    """The base URI to fetch ``dists/<suite>`` from: the configured mirror, else the host's
    archive for the suite, else any Debian archive the host uses."""
    if mirror is not None:
        return mmdebstrap_sources(suite, mirror=mirror)[0].split()[1]
    return find_archives(host_sources, suite).main
