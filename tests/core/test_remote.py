from __future__ import annotations

import tomllib

import pytest

from banger.core.errors import InvalidInput
from banger.core.remote import (
    Contexts,
    RemoteHost,
    choose_host,
    parse_contexts,
    parse_host,
    render_contexts,
)


@pytest.mark.parametrize(
    ("url", "user", "host", "port", "destination", "jump"),
    [
        ("ssh://devbox", None, "devbox", None, "devbox", "devbox"),
        ("ssh://me@devbox", "me", "devbox", None, "me@devbox", "me@devbox"),
        ("ssh://me@devbox:2222/", "me", "devbox", 2222, "me@devbox", "me@devbox:2222"),
        ("ssh://me@10.0.0.2:22", "me", "10.0.0.2", 22, "me@10.0.0.2", "me@10.0.0.2:22"),
        ("ssh://me@[fd00::2]:2222", "me", "[fd00::2]", 2222, "me@fd00::2", "me@[fd00::2]:2222"),
    ],
)
def test_ssh_urls(
    url: str, user: str | None, host: str, port: int | None, destination: str, jump: str
) -> None:
    remote = parse_host(url)
    assert remote == RemoteHost(host, user, port)
    assert remote is not None
    assert (remote.destination, remote.jump) == (destination, jump)
    assert parse_host(remote.url) == remote


def test_unix_means_the_local_daemon() -> None:
    assert parse_host("unix://") is None
    assert parse_host("unix:///run/banger/bangerd.sock") is None


@pytest.mark.parametrize(
    "url",
    ["tcp://devbox:2375", "devbox", "ssh://", "ssh://me@", "ssh://-oProxyCommand=x",
     "ssh://me@devbox:0", "ssh://me@devbox:x", "ssh://-me@devbox", "ssh://me@[fd00::2]x"],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(InvalidInput):
        parse_host(url)


def test_the_destination_can_never_be_read_as_an_option() -> None:
    remote = parse_host("ssh://me@devbox:2222")
    assert remote is not None
    assert remote.ssh_args() == ["-p", "2222", "--", "me@devbox"]


def test_contexts_round_trip_through_toml() -> None:
    contexts = Contexts(
        {"devbox": "ssh://me@devbox", "lab": 'ssh://lab"'}, current="devbox",
        descriptions={"devbox": 'the "big" one'},
    )
    parsed = parse_contexts(tomllib.loads(render_contexts(contexts)))
    assert parsed.hosts == contexts.hosts
    assert parsed.descriptions == contexts.descriptions
    assert parsed.current == "devbox"


def test_a_malformed_file_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="needs a `host`"):
        parse_contexts({"contexts": {"devbox": {"hots": "ssh://x"}}})


def test_which_host_applies_first_match_wins() -> None:
    contexts = Contexts({"a": "ssh://a", "b": "ssh://b"}, current="a")
    env = {"BANGER_HOST": "ssh://env", "BANGER_CONTEXT": "b"}

    def chosen(flag_host: str | None = None, flag_context: str | None = None,
               env: dict[str, str] = env) -> str | None:
        return choose_host(
            flag_host=flag_host, flag_context=flag_context, env=env, contexts=contexts
        )

    assert chosen(flag_host="ssh://flag", flag_context="b") == "ssh://flag"
    assert chosen(flag_context="b") == "ssh://b"
    assert chosen() == "ssh://env"
    assert chosen(env={"BANGER_CONTEXT": "b"}) == "ssh://b"
    assert chosen(env={}) == "ssh://a"
    assert chosen(flag_context="default") is None
    assert choose_host(flag_host=None, flag_context=None, env={}, contexts=None) is None
    with pytest.raises(InvalidInput, match="no banger context 'c'"):
        chosen(flag_context="c")
