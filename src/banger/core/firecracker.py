"""The Firecracker v1.16 API, sans I/O: the requests banger sends, the shapes they must have,
and what a response means.

`SCHEMAS` is our own description of the parts of the published swagger spec
(`src/firecracker/swagger/firecracker.yaml` at v1.16.1) that banger uses, written from the
spec and from the request structs behind it: every object Firecracker parses with
`deny_unknown_fields` is `closed`, the few it does not (Metrics, the snapshot-load
overrides) are open. `validate` checks a body against it; the tests check every request the
backend builds, and the test stand-in uses the same description to reject what the real
binary rejects.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from banger.core.errors import HostError

API_VERSION = "1.16"

# ---------------------------------------------------------------------------------------------
# Schema: a small JSON-schema-like language.
#   {"type": "object", "properties": {...}, "required": [...], "closed": bool}
#   {"type": "string", "enum": [...], "format": "mac"}
#   {"type": "integer", "minimum": n, "maximum": n}
#   {"type": "boolean"} | {"type": "array", "items": {...}} | {"ref": "Name"}

Schema = dict[str, Any]

_TOKEN_BUCKET: Schema = {
    "type": "object",
    "closed": True,
    "required": ["size", "refill_time"],
    "properties": {
        "size": {"type": "integer", "minimum": 0},
        "one_time_burst": {"type": "integer", "minimum": 0},
        "refill_time": {"type": "integer", "minimum": 0},
    },
}

SCHEMAS: dict[str, Schema] = {
    "TokenBucket": _TOKEN_BUCKET,
    "RateLimiter": {
        "type": "object",
        "closed": True,
        "properties": {"bandwidth": {"ref": "TokenBucket"}, "ops": {"ref": "TokenBucket"}},
    },
    "Logger": {
        "type": "object",
        "closed": True,
        "properties": {
            "level": {
                "type": "string",
                # Firecracker accepts these case-insensitively (and "Warn").
                "enum": ["Error", "Warning", "Warn", "Info", "Debug", "Trace", "Off"],
                "case_insensitive": True,
            },
            "log_path": {"type": "string"},
            "show_level": {"type": "boolean"},
            "show_log_origin": {"type": "boolean"},
            "module": {"type": "string"},
        },
    },
    "Metrics": {
        "type": "object",
        "closed": False,  # MetricsConfig has no deny_unknown_fields
        "required": ["metrics_path"],
        "properties": {"metrics_path": {"type": "string"}},
    },
    "BootSource": {
        "type": "object",
        "closed": True,
        "required": ["kernel_image_path"],
        "properties": {
            "kernel_image_path": {"type": "string"},
            "initrd_path": {"type": "string"},
            "boot_args": {"type": "string"},
        },
    },
    "MachineConfiguration": {
        "type": "object",
        "closed": True,
        "required": ["vcpu_count", "mem_size_mib"],
        "properties": {
            "vcpu_count": {"type": "integer", "minimum": 1, "maximum": 32},
            "mem_size_mib": {"type": "integer", "minimum": 1},
            "smt": {"type": "boolean"},
            "cpu_template": {
                "type": "string", "enum": ["C3", "T2", "T2S", "T2CL", "T2A", "V1N1", "None"],
            },
            "track_dirty_pages": {"type": "boolean"},
            "huge_pages": {"type": "string", "enum": ["None", "2M"]},
        },
    },
    "Drive": {
        "type": "object",
        "closed": True,
        "required": ["drive_id", "is_root_device"],
        "properties": {
            "drive_id": {"type": "string"},
            "partuuid": {"type": "string"},
            "is_root_device": {"type": "boolean"},
            "cache_type": {"type": "string", "enum": ["Unsafe", "Writeback"]},
            "is_read_only": {"type": "boolean"},
            "path_on_host": {"type": "string"},
            "rate_limiter": {"ref": "RateLimiter"},
            "io_engine": {"type": "string", "enum": ["Sync", "Async"]},
            "socket": {"type": "string"},
        },
    },
    "PartialDrive": {
        "type": "object",
        "closed": True,
        "required": ["drive_id"],
        "properties": {
            "drive_id": {"type": "string"},
            "path_on_host": {"type": "string"},
            "rate_limiter": {"ref": "RateLimiter"},
        },
    },
    "NetworkInterface": {
        "type": "object",
        "closed": True,
        "required": ["iface_id", "host_dev_name"],
        "properties": {
            "iface_id": {"type": "string"},
            "host_dev_name": {"type": "string"},
            "guest_mac": {"type": "string", "format": "mac"},
            "mtu": {"type": "integer", "minimum": 68, "maximum": 65535},
            "rx_rate_limiter": {"ref": "RateLimiter"},
            "tx_rate_limiter": {"ref": "RateLimiter"},
        },
    },
    "EntropyDevice": {
        "type": "object",
        "closed": True,
        "properties": {"rate_limiter": {"ref": "RateLimiter"}},
    },
    "SerialDevice": {
        "type": "object",
        "closed": True,
        "properties": {
            "serial_out_path": {"type": "string"},
            "rate_limiter": {"ref": "TokenBucket"},
        },
    },
    "Vsock": {
        "type": "object",
        "closed": True,
        "required": ["guest_cid", "uds_path"],
        "properties": {
            "guest_cid": {"type": "integer", "minimum": 3, "maximum": 2**32 - 1},
            "uds_path": {"type": "string"},
            "vsock_id": {"type": "string"},
        },
    },
    "InstanceActionInfo": {
        "type": "object",
        "closed": True,
        "required": ["action_type"],
        "properties": {
            "action_type": {
                "type": "string", "enum": ["FlushMetrics", "InstanceStart", "SendCtrlAltDel"],
            },
        },
    },
    "Vm": {
        "type": "object",
        "closed": True,
        "required": ["state"],
        "properties": {"state": {"type": "string", "enum": ["Paused", "Resumed"]}},
    },
    "SnapshotCreateParams": {
        "type": "object",
        "closed": True,
        "required": ["snapshot_path", "mem_file_path"],
        "properties": {
            "snapshot_path": {"type": "string"},
            "mem_file_path": {"type": "string"},
            "snapshot_type": {"type": "string", "enum": ["Full", "Diff"]},
        },
    },
    "MemoryBackend": {
        "type": "object",
        "closed": True,
        "required": ["backend_type", "backend_path"],
        "properties": {
            "backend_type": {"type": "string", "enum": ["File", "Uffd"]},
            "backend_path": {"type": "string"},
        },
    },
    "NetworkOverride": {
        "type": "object",
        "closed": False,  # no deny_unknown_fields on NetworkOverride
        "required": ["iface_id", "host_dev_name"],
        "properties": {"iface_id": {"type": "string"}, "host_dev_name": {"type": "string"}},
    },
    "VsockOverride": {
        "type": "object",
        "closed": False,
        "required": ["uds_path"],
        "properties": {"uds_path": {"type": "string"}},
    },
    "SnapshotLoadParams": {
        "type": "object",
        "closed": True,
        "required": ["snapshot_path"],
        # Exactly one of mem_backend / mem_file_path (checked in `validate_request`).
        "properties": {
            "snapshot_path": {"type": "string"},
            "mem_file_path": {"type": "string"},
            "mem_backend": {"ref": "MemoryBackend"},
            "enable_diff_snapshots": {"type": "boolean"},
            "track_dirty_pages": {"type": "boolean"},
            "resume_vm": {"type": "boolean"},
            "network_overrides": {"type": "array", "items": {"ref": "NetworkOverride"}},
            "vsock_override": {"ref": "VsockOverride"},
            "clock_realtime": {"type": "boolean"},
        },
    },
}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # with a `{id}` placeholder for per-device endpoints
    schema: str
    pre_boot_only: bool = False
    post_boot_only: bool = False
    id_field: str | None = None  # the body field that must equal the path's id


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("PUT", "/logger", "Logger", pre_boot_only=True),
    Endpoint("PUT", "/metrics", "Metrics", pre_boot_only=True),
    Endpoint("PUT", "/serial", "SerialDevice", pre_boot_only=True),
    Endpoint("PUT", "/boot-source", "BootSource", pre_boot_only=True),
    Endpoint("PUT", "/machine-config", "MachineConfiguration", pre_boot_only=True),
    Endpoint("PUT", "/drives/{id}", "Drive", pre_boot_only=True, id_field="drive_id"),
    # Also on a VM that a snapshot load left paused: it runs on the runtime controller.
    Endpoint("PATCH", "/drives/{id}", "PartialDrive", post_boot_only=True, id_field="drive_id"),
    Endpoint("PUT", "/network-interfaces/{id}", "NetworkInterface", pre_boot_only=True,
             id_field="iface_id"),
    Endpoint("PUT", "/entropy", "EntropyDevice", pre_boot_only=True),
    Endpoint("PUT", "/vsock", "Vsock", pre_boot_only=True),
    Endpoint("PUT", "/actions", "InstanceActionInfo"),
    Endpoint("PATCH", "/vm", "Vm", post_boot_only=True),
    Endpoint("PUT", "/snapshot/create", "SnapshotCreateParams", post_boot_only=True),
    Endpoint("PUT", "/snapshot/load", "SnapshotLoadParams", pre_boot_only=True),
)

_ID = re.compile(r"^\w+$")  # Firecracker: alphanumeric characters and '_' only
_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")


def find_endpoint(method: str, path: str) -> tuple[Endpoint, str | None] | None:
    """The endpoint a request line addresses, and the id from its path if it has one."""
    for endpoint in ENDPOINTS:
        if endpoint.method != method:
            continue
        if "{id}" in endpoint.path:
            prefix = endpoint.path.split("{id}")[0]
            if path.startswith(prefix) and "/" not in path[len(prefix):]:
                return endpoint, path[len(prefix):]
        elif path == endpoint.path:
            return endpoint, None
    return None


def validate(
    value: Any, schema: Schema, where: str = "body", *, strict: bool = False
) -> list[str]:
    """Every way `value` breaks `schema`, as readable lines (empty: it conforms).
    `strict` treats every object as closed: what our own requests must satisfy."""
    if "ref" in schema:
        return validate(value, SCHEMAS[schema["ref"]], where, strict=strict)
    kind = schema["type"]
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{where}: expected an object"]
        errors = []
        properties: dict[str, Schema] = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{where}: missing field `{name}`")
        for name, item in value.items():
            if name in properties:
                errors.extend(validate(item, properties[name], f"{where}.{name}", strict=strict))
            elif strict or schema.get("closed", True):
                errors.append(f"{where}: unknown field `{name}`")
        return errors
    if kind == "array":
        if not isinstance(value, list):
            return [f"{where}: expected an array"]
        errors = []
        for index, item in enumerate(value):
            errors.extend(validate(item, schema["items"], f"{where}[{index}]", strict=strict))
        return errors
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{where}: expected a boolean"]
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{where}: expected an integer"]
        if "minimum" in schema and value < schema["minimum"]:
            return [f"{where}: {value} is below the minimum {schema['minimum']}"]
        if "maximum" in schema and value > schema["maximum"]:
            return [f"{where}: {value} is above the maximum {schema['maximum']}"]
        return []
    if kind == "string":
        if not isinstance(value, str):
            return [f"{where}: expected a string"]
        enum = schema.get("enum")
        if enum is not None:
            known = [e.lower() for e in enum] if schema.get("case_insensitive") else enum
            probe = value.lower() if schema.get("case_insensitive") else value
            if probe not in known:
                return [f"{where}: unknown variant `{value}`, expected one of {enum}"]
        if schema.get("format") == "mac" and not _MAC.match(value):
            return [f"{where}: `{value}` is not a MAC address"]
        return []
    raise ValueError(f"unknown schema type {kind!r}")


def validate_request(
    method: str, path: str, body: Any, *, strict: bool = False
) -> list[str]:
    """What is wrong with a request for the API: unknown endpoint, bad id, bad body."""
    found = find_endpoint(method, path)
    if found is None:
        return [f"Invalid request method and/or path: {method} {path}."]
    endpoint, path_id = found
    if path_id is not None:
        if not path_id:
            return ["The ID cannot be empty."]
        if not _ID.match(path_id):
            return ["API Resource IDs can only contain alphanumeric characters and underscores."]
    errors = validate(body, SCHEMAS[endpoint.schema], strict=strict)
    if errors:
        return errors
    if endpoint.id_field and body.get(endpoint.id_field) != path_id:
        return ["The id from the path does not match the id from the body!"]
    if endpoint.schema == "SnapshotLoadParams":
        memory = [k for k in ("mem_backend", "mem_file_path") if k in body]
        if not memory:
            return ["missing field: either `mem_backend` or `mem_file_path` is required"]
        if len(memory) > 1:
            return ["too many fields: either `mem_backend` or `mem_file_path` exclusively is "
                    "required"]
    return []


# ---------------------------------------------------------------------------------------------
# Requests


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: dict[str, Any]

    def encode(self) -> bytes:
        """The request as HTTP/1.1 bytes for the API socket."""
        payload = json.dumps(self.body).encode()
        head = (
            f"{self.method} {self.path} HTTP/1.1\r\n"
            "Host: localhost\r\n"
            "Accept: application/json\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n"
            "\r\n"
        )
        return head.encode() + payload

    def describe(self) -> str:
        return f"{self.method} {self.path}"


def put_logger(log_path: str, level: str = "Info") -> Request:
    return Request("PUT", "/logger", {
        "log_path": log_path, "level": level, "show_level": True, "show_log_origin": False,
    })


def put_metrics(metrics_path: str) -> Request:
    return Request("PUT", "/metrics", {"metrics_path": metrics_path})


def put_serial(serial_out_path: str) -> Request:
    return Request("PUT", "/serial", {"serial_out_path": serial_out_path})


def put_boot_source(kernel: str, boot_args: str, initrd: str | None = None) -> Request:
    body: dict[str, Any] = {"kernel_image_path": kernel, "boot_args": boot_args}
    if initrd is not None:
        body["initrd_path"] = initrd
    return Request("PUT", "/boot-source", body)


def put_machine_config(vcpu_count: int, mem_size_mib: int) -> Request:
    return Request("PUT", "/machine-config", {
        "vcpu_count": vcpu_count, "mem_size_mib": mem_size_mib, "smt": False,
    })


def put_drive(
    drive_id: str, path_on_host: str, *, is_root_device: bool, is_read_only: bool
) -> Request:
    return Request("PUT", f"/drives/{drive_id}", {
        "drive_id": drive_id,
        "path_on_host": path_on_host,
        "is_root_device": is_root_device,
        "is_read_only": is_read_only,
    })


def patch_drive(drive_id: str, path_on_host: str) -> Request:
    """Point a drive of a started (or loaded) VM at another file; Firecracker reopens it and
    raises virtio-blk's config-change interrupt, so the guest reads its size again."""
    return Request("PATCH", f"/drives/{drive_id}", {
        "drive_id": drive_id, "path_on_host": path_on_host,
    })


def put_network_interface(iface_id: str, host_dev_name: str, guest_mac: str) -> Request:
    return Request("PUT", f"/network-interfaces/{iface_id}", {
        "iface_id": iface_id, "host_dev_name": host_dev_name, "guest_mac": guest_mac,
    })


def put_entropy() -> Request:
    return Request("PUT", "/entropy", {})


def put_vsock(guest_cid: int, uds_path: str) -> Request:
    return Request("PUT", "/vsock", {"guest_cid": guest_cid, "uds_path": uds_path})


def action(action_type: str) -> Request:
    return Request("PUT", "/actions", {"action_type": action_type})


def instance_start() -> Request:
    return action("InstanceStart")


def send_ctrl_alt_del() -> Request:
    return action("SendCtrlAltDel")


def flush_metrics() -> Request:
    return action("FlushMetrics")


def patch_vm(state: str) -> Request:
    return Request("PATCH", "/vm", {"state": state})


def pause() -> Request:
    return patch_vm("Paused")


def resume() -> Request:
    return patch_vm("Resumed")


def snapshot_create(snapshot_path: str, mem_file_path: str) -> Request:
    return Request("PUT", "/snapshot/create", {
        "snapshot_type": "Full", "snapshot_path": snapshot_path, "mem_file_path": mem_file_path,
    })


def snapshot_load(
    snapshot_path: str, mem_file_path: str, *, resume_vm: bool,
    network_overrides: dict[str, str] | None = None, vsock_override: str | None = None,
) -> Request:
    """The memory file is mapped MAP_PRIVATE: every VM loaded from one file shares its pages
    until it writes them. The snapshot remembers the TAP and the vsock socket it was taken
    with; a VM restored elsewhere needs its own: `network_overrides` maps iface_id -> TAP,
    `vsock_override` is the vsock device's new host-side socket."""
    body: dict[str, Any] = {
        "snapshot_path": snapshot_path,
        "mem_backend": {"backend_type": "File", "backend_path": mem_file_path},
        "resume_vm": resume_vm,
    }
    if network_overrides:
        body["network_overrides"] = [
            {"iface_id": iface, "host_dev_name": tap} for iface, tap in network_overrides.items()
        ]
    if vsock_override is not None:
        body["vsock_override"] = {"uds_path": vsock_override}
    return Request("PUT", "/snapshot/load", body)


# The host side of Firecracker's vsock: a connection to the device's Unix socket asks for a
# guest port with one line, and Firecracker answers once the guest accepted it (it closes
# the connection if nothing listens there).


def vsock_connect(port: int) -> bytes:
    return f"CONNECT {port}\n".encode()


def parse_vsock_ack(line: bytes) -> int | None:
    """The host-side port from Firecracker's `OK <port>` line, or None for anything else."""
    parts = line.decode("ascii", errors="replace").split()
    if len(parts) == 2 and parts[0] == "OK" and parts[1].isdigit():
        return int(parts[1])
    return None


@dataclass(frozen=True)
class BootPlan:
    """Everything the backend tells Firecracker before InstanceStart, in order."""

    logger: Request
    metrics: Request
    serial: Request
    boot_source: Request
    machine: Request
    drives: tuple[Request, ...]
    network: tuple[Request, ...]
    entropy: Request
    vsock: Request | None

    def requests(self) -> list[Request]:
        return [
            self.logger, self.metrics, self.serial, self.boot_source, self.machine,
            *self.drives, *self.network, self.entropy,
            *([self.vsock] if self.vsock else []),
        ]


# The one network interface of every VM (snapshot loads override its TAP by this id).
IFACE_ID = "eth0"


@dataclass(frozen=True)
class DriveSpec:
    drive_id: str
    path: str
    read_only: bool
    root: bool = False


def boot_plan(
    *,
    kernel: str,
    initrd: str | None,
    boot_args: str,
    vcpu: int,
    memory_mib: int,
    drives: list[DriveSpec],
    tap: str,
    mac: str,
    log_path: str,
    metrics_path: str,
    console_path: str,
    vsock_path: str | None,
) -> BootPlan:
    return BootPlan(
        logger=put_logger(log_path),
        metrics=put_metrics(metrics_path),
        serial=put_serial(console_path),
        boot_source=put_boot_source(kernel, boot_args, initrd),
        machine=put_machine_config(vcpu, memory_mib),
        drives=tuple(
            put_drive(d.drive_id, d.path, is_root_device=d.root, is_read_only=d.read_only)
            for d in drives
        ),
        network=(put_network_interface(IFACE_ID, tap, mac),),
        entropy=put_entropy(),
        # Every VM has its own vsock device, so the same guest CID is fine for all of them.
        vsock=put_vsock(3, vsock_path) if vsock_path else None,
    )


# ---------------------------------------------------------------------------------------------
# Responses


class FirecrackerError(HostError):
    """Firecracker refused a request; the message carries its fault_message."""

    code = "firecracker_error"
    default_hint: ClassVar[str] = "the VM's firecracker.log in its VM dir has Firecracker's side"


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class IncompleteResponse(Exception):
    """More bytes are needed before the response can be parsed."""


def parse_response(data: bytes) -> Response:
    """One HTTP/1.1 response from the API socket (Content-Length framed, as micro_http sends
    it). Raises IncompleteResponse if `data` does not hold all of it yet."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        raise IncompleteResponse
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if len(rest) < length:
        raise IncompleteResponse
    return Response(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, rest[:length])


def fault_message(response: Response) -> str:
    try:
        data = json.loads(response.body)
    except ValueError:
        data = None
    message = data.get("fault_message") if isinstance(data, dict) else None
    if isinstance(message, str):
        return message
    text = response.body.decode(errors="replace").strip()
    return text or f"HTTP {response.status} {response.reason}".strip()


def check_response(request: Request, response: Response) -> Any:
    """The response's JSON body (None for 204), or FirecrackerError with Firecracker's words."""
    if 200 <= response.status < 300:
        if response.status == 204 or not response.body:
            return None
        return json.loads(response.body)
    raise FirecrackerError(
        f"firecracker refused {request.describe()}: {fault_message(response)}"
    )


# ---------------------------------------------------------------------------------------------
# Metrics: Firecracker flushes one JSON object per line to the metrics file.


@dataclass(frozen=True)
class MetricsSample:
    timestamp_ms: int
    block_read_bytes: int
    block_write_bytes: int
    net_rx_bytes: int
    net_tx_bytes: int
    vcpu_exits: int


def _counter(data: dict[str, Any], group: str, name: str) -> int:
    section = data.get(group)
    value = section.get(name, 0) if isinstance(section, dict) else 0
    return value if isinstance(value, int) else 0


def parse_metrics_line(line: str) -> MetricsSample | None:
    """One flushed metrics line; None for a partial or foreign line. Firecracker's counters
    are deltas since the previous flush."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("utc_timestamp_ms"), int):
        return None
    vcpu = data.get("vcpu")
    exits = sum(v for k, v in vcpu.items() if k.startswith("exit_") and isinstance(v, int)) \
        if isinstance(vcpu, dict) else 0
    return MetricsSample(
        timestamp_ms=data["utc_timestamp_ms"],
        block_read_bytes=_counter(data, "block", "read_bytes"),
        block_write_bytes=_counter(data, "block", "write_bytes"),
        net_rx_bytes=_counter(data, "net", "rx_bytes_count"),
        net_tx_bytes=_counter(data, "net", "tx_bytes_count"),
        vcpu_exits=exits,
    )


def parse_metrics(text: str) -> list[MetricsSample]:
    return [s for s in (parse_metrics_line(line) for line in text.splitlines()) if s]
