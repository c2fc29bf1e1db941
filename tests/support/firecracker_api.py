"""Our own description of the Firecracker v1.16 API, for tests: the parts of the published
swagger spec (`src/firecracker/swagger/firecracker.yaml` at v1.16.1) that banger uses, written
from the spec and from the request structs behind it. Every object Firecracker parses with
`deny_unknown_fields` is `closed`, the few it does not (Metrics, the snapshot-load overrides)
are open. `validate` checks a body against it; the tests check every request the backend
builds, and the Firecracker stand-in uses the same description to reject what the real binary
rejects. Only tests use it, so it lives here rather than in `banger.core.firecracker`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

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
