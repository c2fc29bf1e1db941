"""`banger context ...` and the root options that choose the daemon (--host, --context)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import banger.client
from banger.cli.context import Context
from banger.cli.main import dispatch
from banger.client.remote import choose_remote, contexts_path
from tests.support.cli import run


def test_add_use_ls_rm(capsys: pytest.CaptureFixture[str], isolated_home: Path) -> None:
    assert run(["context", "add", "devbox", "ssh://me@devbox:2222",
                "--description", "the build box"], capsys)[0] == 0
    assert (Path(contexts_path({"HOME": str(isolated_home),
                                "XDG_CONFIG_HOME": str(isolated_home / ".config")}))
            .stat().st_mode & 0o777) == 0o600
    _, out, _ = run(["context", "ls", "--json"], capsys)
    rows = json.loads(out)
    assert [(r["name"], r["current"]) for r in rows] == [("default", True), ("devbox", False)]
    assert run(["context", "use", "devbox"], capsys)[0] == 0
    import os

    remote = choose_remote(os.environ)
    assert remote is not None and remote.url == "ssh://me@devbox:2222"
    _, out, _ = run(["context", "ls"], capsys)
    assert "devbox *" in out and "the build box" in out
    assert run(["context", "rm", "devbox"], capsys)[0] == 0
    assert choose_remote(os.environ) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["context", "add", "devbox", "tcp://devbox"], "unsupported banger host"),
        (["context", "add", "default", "ssh://devbox"], "is the local daemon"),
        (["context", "add", "bad name", "ssh://devbox"], "invalid context name"),
        (["context", "use", "ghost"], "no banger context 'ghost'"),
    ],
)
def test_mistakes_are_clear_errors(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run(args, capsys)
    assert code == 1 and message in err


def test_root_options_choose_the_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, object]] = []
    monkeypatch.setattr(banger.client, "Client", lambda **kw: made.append(kw) or object())
    for argv, expected in (
        (["--host", "ssh://a", "context", "ls"], ("ssh://a", None)),
        (["-H=ssh://b", "context", "ls"], ("ssh://b", None)),
        (["--context", "lab", "context", "ls"], (None, "lab")),
    ):
        ctx = Context()
        dispatch(ctx, argv)
        assert (ctx.host, ctx.context) == expected
        ctx.client  # noqa: B018 (the property makes it)
        assert (made[-1]["host"], made[-1]["context"]) == expected


def test_host_and_context_together_are_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(["--host", "ssh://a", "--context", "b", "vm", "list"], capsys)
    assert code == 2 and "cannot be used together" in err
