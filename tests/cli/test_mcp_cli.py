"""`banger mcp`'s own options (the server itself: tests/mcp/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import FakeClient, run


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config" / "banger"


def test_print_token_makes_the_token_once(
    client: FakeClient, config_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["mcp", "--print-token"], capsys)
    assert code == 0 and len(out.strip()) >= 32
    assert (config_home / "mcp-token").read_text() == out
    assert run(["mcp", "--print-token"], capsys)[1] == out
    assert client.calls == []


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "::"])
def test_http_refuses_to_listen_beyond_loopback(
    client: FakeClient, config_home: Path, capsys: pytest.CaptureFixture[str], host: str
) -> None:
    code, _, err = run(["mcp", "--http", "--host", host], capsys)
    assert code == 1
    assert f"error: refusing to serve MCP on {host}: only loopback addresses" in err
    assert not (config_home / "mcp-token").exists()
    assert client.calls == []


def test_host_and_port_need_http(client: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["mcp", "--port", "8000"], capsys)
    assert (code, err.splitlines()[0]) == (1, "error: --host and --port need --http")
