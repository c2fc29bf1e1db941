"""The E2B endpoint's records, answers, filters, paging and envd messages."""

from __future__ import annotations

import base64

import pytest

from banger.core import e2bwire
from banger.core.connect import RPCError
from banger.core.e2bwire import SandboxRecord


def record(sandbox_id: str, started: float, **changes: object) -> SandboxRecord:
    fields: dict[str, object] = dict(
        sandbox_id=sandbox_id, vm=sandbox_id, template_id="base", access_token="t",
        started_at=started, end_at=started + 300, cpu_count=2, memory_mb=1024,
        disk_size_mb=4096, metadata={"team": "a"},
    )
    fields.update(changes)
    return SandboxRecord(**fields)  # type: ignore[arg-type]


def test_answers_use_e2b_names() -> None:
    made = record("e2b-1", 0.0)
    assert e2bwire.created(made) == {
        "templateID": "base", "sandboxID": "e2b-1", "clientID": "banger",
        "envdVersion": e2bwire.ENVD_VERSION, "envdAccessToken": "t",
    }
    listed = e2bwire.listed(made)
    assert listed["startedAt"] == "1970-01-01T00:00:00Z"
    assert listed["endAt"] == "1970-01-01T00:05:00Z"
    assert listed["state"] == "running"
    assert "envdAccessToken" not in listed
    assert e2bwire.detail(record("e2b-1", 0.0, paused=True))["state"] == "paused"


def test_metadata_filter_undoes_the_sdks_double_encoding() -> None:
    assert e2bwire.metadata_filter("team=a%2520b&k=v") == {"team": "a b", "k": "v"}
    assert e2bwire.metadata_filter(None) == {}


def test_matches_by_metadata_state_and_template() -> None:
    made = record("e2b-1", 0.0)
    assert e2bwire.matches(made, {"team": "a"}, set(), None)
    assert not e2bwire.matches(made, {"team": "b"}, set(), None)
    assert not e2bwire.matches(made, {}, {"paused"}, None)
    assert not e2bwire.matches(made, {}, set(), "other")


def test_paging_by_next_token() -> None:
    records = [record(f"e2b-{n}", float(n)) for n in (3, 1, 2)]
    first, token = e2bwire.page(records, 2, None)
    assert [r.sandbox_id for r in first] == ["e2b-1", "e2b-2"]
    assert token == "e2b-3"
    rest, last = e2bwire.page(records, 2, token)
    assert ([r.sandbox_id for r in rest], last) == (["e2b-3"], None)


def test_timeouts() -> None:
    assert e2bwire.timeout_of(None) == e2bwire.DEFAULT_TIMEOUT
    assert e2bwire.timeout_of(10 ** 9) == e2bwire.MAX_TIMEOUT
    with pytest.raises(ValueError):
        e2bwire.timeout_of("5")


def test_process_start_and_events() -> None:
    start = e2bwire.process_start({"process": {"cmd": "/bin/bash", "args": ["-c", "true"],
                                               "envs": {"A": "1"}}, "tag": "t"})
    assert start.argv == ["/bin/bash", "-c", "true"]
    assert (start.envs, start.tag, start.pty, start.stdin) == ({"A": "1"}, "t", None, False)
    with pytest.raises(RPCError, match="cmd"):
        e2bwire.process_start({"process": {}})
    terminal = e2bwire.process_start({"process": {"cmd": "sh"}, "pty": {}})
    assert (terminal.pty, terminal.stdin) == ((80, 24), True)
    assert e2bwire.data_event("stdout", b"hi") == {
        "event": {"data": {"stdout": base64.b64encode(b"hi").decode()}}}
    assert e2bwire.end_event(3, None) == {
        "event": {"end": {"exitCode": 3, "exited": True, "status": "exit status 3"}}}
    assert e2bwire.end_event(None, 9)["event"]["end"]["status"] == "signal: kill"


def test_selectors_signals_and_input() -> None:
    assert e2bwire.selected_pid({"process": {"pid": 7}}, {}) == 7
    assert e2bwire.selected_pid({"process": {"tag": "t"}}, {"t": 8}) == 8
    with pytest.raises(RPCError):
        e2bwire.selected_pid({"process": {"tag": "x"}}, {})
    assert e2bwire.signal_number("SIGNAL_SIGKILL") == 9
    with pytest.raises(RPCError):
        e2bwire.signal_number("SIGNAL_NOPE")
    assert e2bwire.stdin_bytes({"input": {"stdin": "aGk="}}) == b"hi"
