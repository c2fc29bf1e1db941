from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from banger.core import sshconfig
from banger.core.errors import InvalidInput

KEY = "/home/u/.config/banger/ssh/id_ed25519"
KNOWN = "/home/u/.config/banger/ssh/known_hosts"
BLOCK = sshconfig.include_block("~/.config/banger/ssh_config")


def no_markers(text: str) -> bool:
    markers = (sshconfig.BEGIN, sshconfig.END)
    return not any(line.rstrip() in markers for line in text.split("\n"))


# banger's ssh_config


def test_one_host_entry_per_vm_with_bangers_key_and_pinned_host_keys() -> None:
    text = sshconfig.render_ssh_config(
        [("web", "172.16.0.3"), ("box", "172.16.0.2")], identity_file=KEY, known_hosts=KNOWN
    )
    assert text.startswith("# Written by bangerd")
    entries = text.split("\n\n")[1:]
    assert entries[0] == (
        "Host box.vm\n"
        "    HostName 172.16.0.2\n"
        "    User root\n"
        f"    IdentityFile {KEY}\n"
        "    IdentitiesOnly yes\n"
        f"    UserKnownHostsFile {KNOWN}\n"
        "    GlobalKnownHostsFile /dev/null\n"
        "    StrictHostKeyChecking yes\n"
        "    ForwardAgent no\n"
        "    ForwardX11 no"
    )
    assert entries[1].startswith("Host web.vm\n    HostName 172.16.0.3\n")
    assert text.endswith("ForwardX11 no\n")


def test_a_guest_behind_a_loopback_port_is_reached_there_under_its_name() -> None:
    text = sshconfig.render_ssh_config(
        [("box", "10.0.2.15"), ("web", "172.16.0.3")], identity_file=KEY, known_hosts=KNOWN,
        loopback_ports={"box": 40022},
    )
    assert "Host box.vm\n    HostName 127.0.0.1\n    Port 40022\n    HostKeyAlias box.vm\n" in text
    assert "Host web.vm\n    HostName 172.16.0.3\n    User root\n" in text


def test_no_vms_is_a_comment_only_file() -> None:
    text = sshconfig.render_ssh_config([], identity_file=KEY, known_hosts=KNOWN)
    assert all(line.startswith("#") for line in text.splitlines())


def test_paths_are_quoted_and_percent_signs_are_not_tokens() -> None:
    text = sshconfig.render_ssh_config(
        [("box", "172.16.0.2")], identity_file="/home/my user/key", known_hosts="/h/100%/kh"
    )
    assert '    IdentityFile "/home/my user/key"\n' in text
    assert "    UserKnownHostsFile /h/100%%/kh\n" in text


@pytest.mark.parametrize("path", ['/home/a"b/key', "/home/a\nHost *\n/key"])
def test_paths_that_cannot_be_written_are_refused(path: str) -> None:
    with pytest.raises(InvalidInput):
        sshconfig.render_ssh_config([("box", "172.16.0.2")], identity_file=path,
                                    known_hosts=KNOWN)


# the Include line


def test_include_path_under_home_uses_tilde() -> None:
    path = PurePosixPath("/home/u/.config/banger/ssh_config")
    assert sshconfig.include_path(path, PurePosixPath("/home/u")) == (
        "~/.config/banger/ssh_config"
    )


def test_include_path_elsewhere_is_absolute_and_quoted_if_needed() -> None:
    home = PurePosixPath("/home/u")
    assert sshconfig.include_path(PurePosixPath("/srv/b/ssh_config"), home) == (
        "/srv/b/ssh_config"
    )
    assert sshconfig.include_path(PurePosixPath("/srv/my b/ssh_config"), home) == (
        '"/srv/my b/ssh_config"'
    )


# the marker-fenced block in ~/.ssh/config


def test_install_puts_the_block_first() -> None:
    user = "Host *\n    ServerAliveInterval 60\n\nHost gh\n    HostName github.com\n"
    text = sshconfig.install(user, "~/.config/banger/ssh_config")
    assert text == BLOCK + user
    assert text.splitlines()[:4] == [
        sshconfig.BEGIN,
        "# Added by `banger ssh-config --install`; `banger ssh-config --uninstall` removes it.",
        "Include ~/.config/banger/ssh_config",
        sshconfig.END,
    ]


def test_install_into_an_empty_file() -> None:
    assert sshconfig.install("", "~/x") == sshconfig.include_block("~/x")


def test_install_again_changes_nothing() -> None:
    once = sshconfig.install("Host a\n", "~/x")
    assert sshconfig.install(once, "~/x") == once


def test_install_updates_a_moved_block_where_it_is() -> None:
    text = "Host a\n    User me\n" + sshconfig.include_block("/old/path") + "Host b\n"
    assert sshconfig.install(text, "~/new") == (
        "Host a\n    User me\n" + sshconfig.include_block("~/new") + "Host b\n"
    )


def test_install_keeps_a_block_that_ends_the_file_without_newline() -> None:
    text = "Host a\n" + sshconfig.include_block("~/x")[:-1]
    assert sshconfig.install(text, "~/x") == text


def test_install_drops_duplicate_blocks() -> None:
    block = sshconfig.include_block("~/x")
    assert sshconfig.install(block + "Host a\n" + block + "Host b\n", "~/x") == (
        block + "Host a\nHost b\n"
    )


def test_uninstall_removes_exactly_the_block() -> None:
    user = "# my config\r\nHost a\n\tUser me\n\n"
    assert sshconfig.uninstall(sshconfig.install(user, "~/x")) == user
    assert sshconfig.uninstall("a\n" + sshconfig.include_block("~/x") + "b") == "a\nb"


def test_uninstall_without_a_block_changes_nothing() -> None:
    assert sshconfig.uninstall("Host a\n") == "Host a\n"
    assert sshconfig.uninstall("") == ""


@pytest.mark.parametrize("text", [
    f"{sshconfig.BEGIN}\nInclude x\n",
    f"Include x\n{sshconfig.END}\n",
    f"{sshconfig.BEGIN}\n{sshconfig.BEGIN}\n{sshconfig.END}\n",
])
def test_an_unmatched_marker_is_an_error_not_a_guess(text: str) -> None:
    with pytest.raises(InvalidInput):
        sshconfig.install(text, "~/x")
    with pytest.raises(InvalidInput):
        sshconfig.uninstall(text)


# Any text at all: \r, form feeds, unicode line separators, no final newline.
TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=400)


@given(TEXT)
def test_install_then_uninstall_gives_back_the_same_text(text: str) -> None:
    assume(no_markers(text))
    installed = sshconfig.install(text, "~/.config/banger/ssh_config")
    assert installed == BLOCK + text
    assert sshconfig.install(installed, "~/.config/banger/ssh_config") == installed
    assert sshconfig.uninstall(installed) == text
    assert sshconfig.uninstall(text) == text


@given(TEXT, TEXT)
def test_a_block_anywhere_comes_out_cleanly(before: str, after: str) -> None:
    assume(no_markers(before) and no_markers(after))
    before = before if before.endswith("\n") or not before else before + "\n"
    text = before + BLOCK + after
    assert sshconfig.uninstall(text) == before + after
    assert sshconfig.install(text, "~/.config/banger/ssh_config") == text
