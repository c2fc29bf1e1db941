"""The Firecracker v1.16 API, sans I/O: the requests banger sends and what a response means.
(Our description of the API's schema, which the tests check these requests against, is
`tests/support/firecracker_api.py`.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from banger.core.errors import HostError

API_VERSION = "1.16"

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
