"""The E2B-compatible endpoint's data, without I/O: the sandbox record banger keeps, its
REST answers (camelCase JSON, as E2B's public OpenAPI spec names them), list filters and
paging, and the envd messages (proto3 JSON: camelCase, bytes as base64, enums by name)."""

from __future__ import annotations

import base64
import signal as signals
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from banger.core.connect import RPCError

# The envd version whose features banger serves: stdin (0.3.0), the default user without
# Basic auth (0.4.0), close_stdin (0.5.2), octet-stream uploads (0.5.7), file metadata
# (0.6.2). Not 0.6.3 (entries in watch events) and later.
ENVD_VERSION = "0.6.2"
CLIENT_ID = "banger"
DEFAULT_TIMEOUT = 300
MAX_TIMEOUT = 24 * 3600
DEFAULT_USER = "user"
DEFAULT_HOME = "/home/user"


@dataclass
class SandboxRecord:
    """One sandbox: a banger VM plus what E2B clients know it by. Kept in the store, so its
    deadline (`end_at`) outlives a daemon restart."""

    sandbox_id: str
    vm: str
    template_id: str
    access_token: str
    started_at: float
    end_at: float
    cpu_count: int
    memory_mb: int
    disk_size_mb: int
    metadata: dict[str, str] = field(default_factory=dict)
    envs: dict[str, str] = field(default_factory=dict)
    paused: bool = False

    @property
    def state(self) -> str:
        return "paused" if self.paused else "running"


def record_from_dict(data: dict[str, Any]) -> SandboxRecord:
    return SandboxRecord(**data)


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def created(record: SandboxRecord) -> dict[str, Any]:
    """The answer to create and connect."""
    return {
        "templateID": record.template_id,
        "sandboxID": record.sandbox_id,
        "clientID": CLIENT_ID,
        "envdVersion": ENVD_VERSION,
        "envdAccessToken": record.access_token,
    }


def listed(record: SandboxRecord) -> dict[str, Any]:
    return {
        "templateID": record.template_id,
        "sandboxID": record.sandbox_id,
        "clientID": CLIENT_ID,
        "startedAt": iso(record.started_at),
        "endAt": iso(record.end_at),
        "cpuCount": record.cpu_count,
        "memoryMB": record.memory_mb,
        "diskSizeMB": record.disk_size_mb,
        "metadata": record.metadata,
        "state": record.state,
        "envdVersion": ENVD_VERSION,
    }


def detail(record: SandboxRecord) -> dict[str, Any]:
    return {**listed(record), "envdAccessToken": record.access_token}


def timeout_of(value: Any) -> int:
    """A sandbox timeout in seconds, from a request body (None: the default)."""
    if value is None:
        return DEFAULT_TIMEOUT
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("timeout must be a whole number of seconds")
    return min(value, MAX_TIMEOUT)


def metadata_filter(query: str | None) -> dict[str, str]:
    """The list call's `metadata` query parameter: `k=v&k2=v2` whose keys and values the SDK
    percent-encodes once more before encoding the pairs."""
    if not query:
        return {}
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    return {urllib.parse.unquote(k): urllib.parse.unquote(v) for k, v in pairs}


def matches(
    record: SandboxRecord, metadata: dict[str, str], states: set[str], template: str | None,
) -> bool:
    if states and record.state not in states:
        return False
    if template and record.template_id != template:
        return False
    return all(record.metadata.get(key) == value for key, value in metadata.items())


def page(
    records: list[SandboxRecord], limit: int, next_token: str | None,
) -> tuple[list[SandboxRecord], str | None]:
    """One page of `records` (oldest first) after the token, and the next page's token (the
    sandbox ID it starts at; None on the last page)."""
    ordered = sorted(records, key=lambda r: (r.started_at, r.sandbox_id))
    start = 0
    if next_token:
        ids = [r.sandbox_id for r in ordered]
        start = ids.index(next_token) if next_token in ids else len(ordered)
    chosen = ordered[start:start + limit]
    rest = ordered[start + limit:]
    return chosen, (rest[0].sandbox_id if rest else None)


# envd: processes

@dataclass(frozen=True)
class ProcessStart:
    """A Process/Start request: what to run and how."""

    cmd: str
    args: list[str]
    envs: dict[str, str]
    cwd: str | None
    tag: str | None
    stdin: bool
    pty: tuple[int, int] | None  # (cols, rows)

    @property
    def argv(self) -> list[str]:
        return [self.cmd, *self.args]


def process_start(message: dict[str, Any]) -> ProcessStart:
    config = message.get("process") or {}
    cmd = config.get("cmd")
    if not isinstance(cmd, str) or not cmd:
        raise RPCError("invalid_argument", "process.cmd is required")
    args = config.get("args") or []
    envs = config.get("envs") or {}
    if not all(isinstance(a, str) for a in args) or not isinstance(envs, dict):
        raise RPCError("invalid_argument", "process.args and process.envs must be strings")
    size = (message.get("pty") or {}).get("size") if message.get("pty") is not None else None
    pty = (int(size.get("cols", 80)), int(size.get("rows", 24))) if size is not None else None
    if message.get("pty") is not None and pty is None:
        pty = (80, 24)
    return ProcessStart(
        cmd=cmd, args=list(args), envs={str(k): str(v) for k, v in envs.items()},
        cwd=config.get("cwd") or None, tag=message.get("tag") or None,
        # A terminal's input is always open (the SDK types into PTYs without asking).
        stdin=bool(message.get("stdin", False)) or pty is not None, pty=pty,
    )


def selected_pid(message: dict[str, Any], by_tag: dict[str, int]) -> int:
    """The pid a `process` selector names (by pid, or by tag among `by_tag`)."""
    selector = message.get("process") or {}
    if "pid" in selector:
        return int(selector["pid"])
    tag = selector.get("tag")
    if tag is not None and tag in by_tag:
        return by_tag[tag]
    raise RPCError("not_found", f"process with tag {tag!r} not found")


def signal_number(name: Any) -> int:
    numbers = {"SIGNAL_SIGKILL": signals.SIGKILL, "SIGNAL_SIGTERM": signals.SIGTERM, 9: 9, 15: 15}
    if name not in numbers:
        raise RPCError("invalid_argument", f"unknown signal {name!r}")
    return int(numbers[name])


def start_event(pid: int) -> dict[str, Any]:
    return {"event": {"start": {"pid": pid}}}


def data_event(stream: str, data: bytes) -> dict[str, Any]:
    return {"event": {"data": {stream: base64.b64encode(data).decode()}}}


def keepalive_event() -> dict[str, Any]:
    return {"event": {"keepalive": {}}}


def end_event(exit_code: int | None, signal: int | None) -> dict[str, Any]:
    if signal is not None:
        try:
            status = f"signal: {signals.Signals(signal).name[3:].lower()}"
        except ValueError:
            status = f"signal: {signal}"
        end: dict[str, Any] = {"exitCode": -1, "exited": False, "status": status}
    else:
        code = exit_code if exit_code is not None else -1
        end = {"exitCode": code, "exited": True, "status": f"exit status {code}"}
    return {"event": {"end": end}}


def process_info(pid: int, start: ProcessStart) -> dict[str, Any]:
    config: dict[str, Any] = {"cmd": start.cmd, "args": start.args, "envs": start.envs}
    if start.cwd:
        config["cwd"] = start.cwd
    info: dict[str, Any] = {"config": config, "pid": pid}
    if start.tag:
        info["tag"] = start.tag
    return info


def stdin_bytes(message: dict[str, Any]) -> bytes:
    """The bytes of a ProcessInput (`stdin` or `pty`)."""
    data = message.get("input") or {}
    encoded = data.get("stdin", data.get("pty", ""))
    try:
        return base64.b64decode(encoded, validate=True)
    except ValueError:
        raise RPCError("invalid_argument", "input must be base64") from None
