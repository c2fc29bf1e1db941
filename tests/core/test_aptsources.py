from __future__ import annotations

import pytest

from banger.core.aptsources import (
    AptSource,
    DebianArchives,
    find_archives,
    mmdebstrap_sources,
    parse_deb822,
    parse_one_line,
    parse_sources_file,
    security_for_mirror,
)
from banger.core.errors import ImageBuildFailed

DEB822 = """\
Types: deb
# http://snapshot.example.test/archive/debian/20250520T000000Z
URIs: http://mirror.example.test/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# http://snapshot.example.test/archive/debian-security/20250520T000000Z
URIs: http://mirror.example.test/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

ONE_LINE = (
    "# a comment\n"
    "deb http://mirror.example.test/debian bookworm main contrib\n"
    "deb-src http://mirror.example.test/debian bookworm main\n"
    "\n"
    "deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] "
    "http://sec.example.test/debian-security bookworm-security main # trailing\n"
    "deb http://mirror.example.test/debian bookworm-updates main\n"
)


def test_deb822_stanzas_with_comments_inside() -> None:
    sources = parse_deb822(DEB822)
    assert sources == [
        AptSource(
            types=("deb",),
            uris=("http://mirror.example.test/debian",),
            suites=("bookworm", "bookworm-updates"),
            components=("main",),
        ),
        AptSource(
            types=("deb",),
            uris=("http://mirror.example.test/debian-security",),
            suites=("bookworm-security",),
            components=("main",),
        ),
    ]


def test_deb822_enabled_no_and_continuation_lines() -> None:
    text = """\
types: deb
uris: http://off.example.test/debian
suites: bookworm
components: main
enabled: no

Types: deb deb-src
URIs: http://a.example.test/debian http://b.example.test/debian
Suites: bookworm
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 Suites: not-a-field
 -----END PGP PUBLIC KEY BLOCK-----
"""
    first, second = parse_deb822(text)
    assert first.enabled is False
    assert second.types == ("deb", "deb-src")
    assert second.uris == ("http://a.example.test/debian", "http://b.example.test/debian")
    assert second.suites == ("bookworm",)
    assert find_archives([first, second], "bookworm").main == "http://a.example.test/debian"


def test_deb822_skips_incomplete_stanzas() -> None:
    assert parse_deb822("Types: deb\nURIs: http://x.example.test/debian\n") == []


def test_one_line_options_comments_and_types() -> None:
    sources = parse_one_line(ONE_LINE)
    assert [s.types[0] for s in sources] == ["deb", "deb-src", "deb", "deb"]
    assert sources[0].components == ("main", "contrib")
    assert sources[2].uris == ("http://sec.example.test/debian-security",)
    assert sources[2].suites == ("bookworm-security",)
    assert sources[2].components == ("main",)


def test_parse_sources_file_dispatches_on_name() -> None:
    assert parse_sources_file("debian.sources", DEB822) == parse_deb822(DEB822)
    assert parse_sources_file("sources.list", ONE_LINE) == parse_one_line(ONE_LINE)


def test_find_archives_deb822() -> None:
    assert find_archives(parse_deb822(DEB822), "bookworm") == DebianArchives(
        main="http://mirror.example.test/debian",
        security="http://mirror.example.test/debian-security",
    )


def test_find_archives_one_line_ignores_deb_src() -> None:
    assert find_archives(parse_one_line(ONE_LINE), "bookworm") == DebianArchives(
        main="http://mirror.example.test/debian",
        security="http://sec.example.test/debian-security",
    )


def test_find_archives_prefers_exact_suite_over_updates() -> None:
    text = (
        "deb http://upd.example.test/debian bookworm-updates main\n"
        "deb http://main.example.test/debian/ bookworm main\n"
    )
    assert find_archives(parse_one_line(text), "bookworm").main == (
        "http://main.example.test/debian"
    )


def test_find_archives_falls_back_to_updates_entry() -> None:
    text = "deb http://upd.example.test/debian bookworm-updates main\n"
    archives = find_archives(parse_one_line(text), "bookworm")
    assert archives == DebianArchives(main="http://upd.example.test/debian", security=None)


def test_security_recognised_by_uri() -> None:
    text = (
        "deb http://m.example.test/debian bookworm main\n"
        "deb http://m.example.test/debian-security bookworm-security/updates main\n"
    )
    assert find_archives(parse_one_line(text), "bookworm").security == (
        "http://m.example.test/debian-security"
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "deb http://m.example.test/ubuntu jammy main\n",
        "deb-src http://m.example.test/debian bookworm main\n",
        "deb cdrom:[Debian GNU/Linux 12]/ bookworm main\n",
        "deb http://m.example.test/debian bookworm contrib\n",
    ],
)
def test_nothing_usable_raises_with_mirror_hint(text: str) -> None:
    with pytest.raises(ImageBuildFailed) as info:
        find_archives(parse_one_line(text), "bookworm")
    assert "debian_mirror" in info.value.hint


def test_disabled_deb822_is_not_used() -> None:
    text = DEB822.replace("Components: main\n", "Components: main\nEnabled: no\n")
    with pytest.raises(ImageBuildFailed):
        find_archives(parse_deb822(text), "bookworm")


def test_mmdebstrap_sources_from_host() -> None:
    assert mmdebstrap_sources("bookworm", host_sources=parse_deb822(DEB822)) == [
        "deb http://mirror.example.test/debian bookworm main",
        "deb http://mirror.example.test/debian bookworm-updates main",
        "deb http://mirror.example.test/debian-security bookworm-security main",
    ]


def test_mmdebstrap_sources_without_security() -> None:
    text = "deb http://m.example.test/mirror bookworm main\n"
    assert mmdebstrap_sources("bookworm", host_sources=parse_one_line(text)) == [
        "deb http://m.example.test/mirror bookworm main",
        "deb http://m.example.test/mirror bookworm-updates main",
    ]


def test_mirror_override_wins_and_derives_security() -> None:
    lines = mmdebstrap_sources(
        "bookworm",
        mirror="http://override.example.test/debian/",
        host_sources=parse_deb822(DEB822),
    )
    assert lines == [
        "deb http://override.example.test/debian bookworm main",
        "deb http://override.example.test/debian bookworm-updates main",
        "deb http://override.example.test/debian-security bookworm-security main",
    ]


def test_mirror_override_without_debian_segment_uses_host_security() -> None:
    lines = mmdebstrap_sources(
        "bookworm", mirror="https://proxy.example.test/deb", host_sources=parse_deb822(DEB822)
    )
    assert lines[-1] == "deb http://mirror.example.test/debian-security bookworm-security main"
    assert lines[0] == "deb https://proxy.example.test/deb bookworm main"


def test_mirror_override_alone_is_enough() -> None:
    assert len(mmdebstrap_sources("bookworm", mirror="http://o.example.test/x")) == 2


def test_mirror_override_must_be_a_uri() -> None:
    with pytest.raises(ImageBuildFailed) as info:
        mmdebstrap_sources("bookworm", mirror="o.example.test/debian")
    assert "debian_mirror" in info.value.hint


def test_no_host_sources_no_mirror_raises() -> None:
    with pytest.raises(ImageBuildFailed) as info:
        mmdebstrap_sources("bookworm")
    assert "debian_mirror" in info.value.hint


@pytest.mark.parametrize(
    ("mirror", "expected"),
    [
        ("http://m.example.test/debian", "http://m.example.test/debian-security"),
        (
            "http://snap.example.test/archive/debian/20250520T000000Z/",
            "http://snap.example.test/archive/debian-security/20250520T000000Z",
        ),
        ("http://debian.example.test/pool", None),
        ("file:/srv/debian", None),
    ],
)
def test_security_for_mirror(mirror: str, expected: str | None) -> None:
    assert security_for_mirror(mirror) == expected


def test_archive_for_suite_falls_back_to_any_debian_archive() -> None:
    from banger.core.aptsources import archive_for_suite

    host = parse_deb822(DEB822)
    assert archive_for_suite("bookworm", host_sources=host) == "http://mirror.example.test/debian"
    assert archive_for_suite("trixie", host_sources=host) == "http://mirror.example.test/debian"
    assert archive_for_suite("trixie", mirror="http://m.example.test/debian/") == (
        "http://m.example.test/debian"
    )
    with pytest.raises(ImageBuildFailed):
        archive_for_suite("trixie", host_sources=parse_one_line("deb http://x.test/other s main"))
