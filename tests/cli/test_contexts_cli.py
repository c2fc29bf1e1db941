"""`banger context ...` and the root options that choose the daemon (--host, --context)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import banger.client
from banger.cli.context import Context
from banger.cli.main import dispatch
from banger.client import guestreach
from banger.client.remote import choose_remote, contexts_path
from banger.core.remote import RemoteHost
from tests.support.cli import ACCESS, FakeClient, run


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


def test_vm_ssh_to_a_remote_guest_hops_through_the_host(
    client: FakeClient, ssh: dict[str, list[list[str]]], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """This machine's key is authorized through the agent, the guest's host key pinned in
    this remote's known_hosts, and ssh goes through the remote host."""
    client.remote = RemoteHost("devbox", "me", 2222)
    monkeypatch.setattr(guestreach, "client_key", _fake_key)
    assert run(["vm", "ssh", "dev", "--", "uname"], capsys)[0] == 0
    (name, argv), kwargs = client.called("exec_vm")[0]
    assert name == "dev" and argv[:2] == ["sh", "-c"] and kwargs["stdin"] == b"ssh-ed25519 K\n"
    command = ssh["exec"][0]
    proxy = command[command.index(next(a for a in command if a.startswith("ProxyCommand=")))]
    assert proxy.endswith("-W %h:%p -p 2222 -- me@devbox")
    files = client.paths.config_dir / "remotes" / "me@devbox_2222"
    assert (files / "known_hosts").read_text() == f"172.16.0.2,dev.vm {ACCESS['host_key']}\n"
    assert "ProxyJump me@devbox:2222" in (files / "ssh_config").read_text()
    assert f"UserKnownHostsFile={files / 'known_hosts'}" in command


def _fake_key(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_name(path.name + ".pub").write_text("ssh-ed25519 K\n")
    return path


@pytest.mark.parametrize("args", [
    ["image", "register", "--name", "x", "--rootfs", "/srv/r.ext4", "--kernel", "/srv/k"],
    ["kernel", "register", "--name", "x", "--vmlinuz", "/srv/vmlinuz"],
])
def test_host_path_commands_refuse_a_remote_daemon(
    client: FakeClient, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    """Before looking for the files here (they are the remote host's, if anywhere)."""
    client.remote = RemoteHost("devbox", "me")
    code, _, err = run(args, capsys)
    assert code == 1 and "daemon's host (ssh://me@devbox)" in err
    assert err.count("\n") == 2 and "hint: run it on that host: ssh me@devbox banger" in err
    assert not client.calls


def test_bundles_go_through_a_remote_daemon(
    client: FakeClient, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client.remote = RemoteHost("devbox", "me")
    monkeypatch.chdir(tmp_path)
    assert run(["image", "export", "img", "-o", "b.tar.zst"], capsys)[0] == 0
    (tmp_path / "b.tar.zst").write_bytes(b"x")
    assert run(["image", "import", "b.tar.zst", "--name", "y"], capsys)[0] == 0
    assert [name for name, _, _ in client.calls] == ["export_image", "import_image"]


def test_vm_forward_goes_through_the_remote_host(
    client: FakeClient, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from banger.client import forward

    client.remote = RemoteHost("devbox", "me")
    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr(forward, "forward_through_host", lambda *a: calls.append(a) or 0)
    assert run(["vm", "forward", "dev", "9000:8000"], capsys)[0] == 0
    assert calls == [(client, 9000, ACCESS["ip"], 8000)]
    code, _, err = run(["vm", "forward", "dev", "web"], capsys)
    assert code == 1 and "invalid port 'web'" in err
