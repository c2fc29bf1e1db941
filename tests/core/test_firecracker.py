"""Every request the Firecracker backend sends, checked against our description of the v1.16
API (required fields, no unknown fields, types), and what responses and metrics mean."""

from __future__ import annotations

import json
from typing import Any

import pytest

from banger.core import firecracker as fc
from banger.core.backends import choose_backend
from banger.core.errors import BangerError
from tests.support.firecracker_api import find_endpoint, validate_request

PLAN = fc.boot_plan(
    kernel="/state/firecracker/vmlinux-0123",
    initrd="/images/debian/initrd.img",
    boot_args="console=ttyS0 root=/dev/vda rw reboot=k pci=off",
    vcpu=2,
    memory_mib=1024,
    drives=[
        fc.DriveSpec("rootfs", "/images/debian/rootfs.ext4", read_only=True, root=True),
        fc.DriveSpec("overlay", "/vms/x/overlay.ext4", read_only=False),
        fc.DriveSpec("work", "/vms/x/work.ext4", read_only=False),
    ],
    tap="bgr0123456789ab",
    mac="02:aa:bb:cc:dd:ee",
    log_path="/vms/x/firecracker.log",
    metrics_path="/vms/x/firecracker.metrics",
    console_path="/vms/x/console.log",
    vsock_path="/vms/x/vsock.sock",
)

EVERY_REQUEST = [
    *PLAN.requests(),
    fc.instance_start(),
    fc.send_ctrl_alt_del(),
    fc.flush_metrics(),
    fc.pause(),
    fc.resume(),
    fc.snapshot_create("/vms/x/snapshot/vmstate", "/vms/x/snapshot/memory"),
    fc.snapshot_load("/vms/x/snapshot/vmstate", "/vms/x/snapshot/memory", resume_vm=True,
                     network_overrides={"eth0": "bgr0123456789ab"}),
    fc.snapshot_load("/s", "/m", resume_vm=False),
    fc.snapshot_load("/t/state", "/t/memory", resume_vm=False,
                     network_overrides={"eth0": "bgr0123456789ab"},
                     vsock_override="/vms/x/vsock.sock"),
    fc.patch_drive("work", "work.ext4"),
    fc.put_boot_source("/k", "console=ttyS0"),
]


@pytest.mark.parametrize("request_", EVERY_REQUEST, ids=lambda r: f"{r.method} {r.path}")
def test_every_request_conforms_strictly(request_: fc.Request) -> None:
    assert validate_request(request_.method, request_.path, request_.body, strict=True) == []


def test_the_boot_plan_configures_everything_before_instance_start() -> None:
    paths = [r.path for r in PLAN.requests()]
    assert paths == [
        "/logger", "/metrics", "/serial", "/boot-source", "/machine-config",
        "/drives/rootfs", "/drives/overlay", "/drives/work", "/network-interfaces/eth0",
        "/entropy", "/vsock",
    ]
    assert PLAN.boot_source.body == {
        "kernel_image_path": "/state/firecracker/vmlinux-0123",
        "initrd_path": "/images/debian/initrd.img",
        "boot_args": "console=ttyS0 root=/dev/vda rw reboot=k pci=off",
    }
    assert PLAN.machine.body == {"vcpu_count": 2, "mem_size_mib": 1024, "smt": False}
    assert PLAN.drives[0].body == {
        "drive_id": "rootfs", "path_on_host": "/images/debian/rootfs.ext4",
        "is_root_device": True, "is_read_only": True,
    }
    assert [d.body["is_root_device"] for d in PLAN.drives] == [True, False, False]
    assert PLAN.network[0].body == {
        "iface_id": "eth0", "host_dev_name": "bgr0123456789ab", "guest_mac": "02:aa:bb:cc:dd:ee",
    }
    assert PLAN.vsock is not None
    assert PLAN.vsock.body == {"guest_cid": 3, "uds_path": "/vms/x/vsock.sock"}


def test_boot_args_are_sent_even_when_empty_and_initrd_only_when_given() -> None:
    request = fc.put_boot_source("/k", "")
    assert request.body == {"kernel_image_path": "/k", "boot_args": ""}


def test_state_and_snapshot_requests() -> None:
    assert fc.pause().body == {"state": "Paused"} and fc.pause().method == "PATCH"
    assert fc.resume().body == {"state": "Resumed"}
    assert fc.snapshot_create("/s", "/m").body == {
        "snapshot_type": "Full", "snapshot_path": "/s", "mem_file_path": "/m",
    }
    load = fc.snapshot_load("/s", "/m", resume_vm=True, network_overrides={"eth0": "tap1"})
    assert load.body == {
        "snapshot_path": "/s",
        "mem_backend": {"backend_type": "File", "backend_path": "/m"},
        "resume_vm": True,
        "network_overrides": [{"iface_id": "eth0", "host_dev_name": "tap1"}],
    }


def test_warm_template_restore_requests() -> None:
    # Load paused onto the VM's own TAP and vsock socket, re-point the work drive, resume.
    load = fc.snapshot_load("/t/state", "/t/memory", resume_vm=False,
                            network_overrides={"eth0": "tap1"}, vsock_override="/v/vsock.sock")
    assert load.body["resume_vm"] is False
    assert load.body["vsock_override"] == {"uds_path": "/v/vsock.sock"}
    assert load.body["mem_backend"] == {"backend_type": "File", "backend_path": "/t/memory"}
    patch = fc.patch_drive("work", "work.ext4")
    assert (patch.method, patch.path) == ("PATCH", "/drives/work")
    assert patch.body == {"drive_id": "work", "path_on_host": "work.ext4"}
    endpoint = find_endpoint("PATCH", "/drives/work")
    assert endpoint is not None and endpoint[0].post_boot_only and not endpoint[0].pre_boot_only
    assert validate_request("PATCH", "/drives/work", {"drive_id": "work", "bogus": 1}) == [
        "body: unknown field `bogus`"
    ]
    assert "does not match" in validate_request(
        "PATCH", "/drives/work", {"drive_id": "root", "path_on_host": "x"}
    )[0]


def test_the_vsock_handshake() -> None:
    assert fc.vsock_connect(1024) == b"CONNECT 1024\n"
    assert fc.parse_vsock_ack(b"OK 1073741824\n") == 1073741824
    for line in (b"", b"OK\n", b"ERR 1\n", b"OK x\n", b"OK 1 2\n"):
        assert fc.parse_vsock_ack(line) is None


def test_encode_is_an_http11_request_with_a_json_body() -> None:
    raw = fc.put_machine_config(1, 256).encode()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "PUT /machine-config HTTP/1.1"
    assert f"Content-Length: {len(body)}" in lines
    assert json.loads(body) == {"vcpu_count": 1, "mem_size_mib": 256, "smt": False}


# The validator itself: what it rejects.

@pytest.mark.parametrize(("method", "path", "body", "expected"), [
    ("PUT", "/boot-source", {"kernel_image_path": "/k", "bogus": 1}, "unknown field `bogus`"),
    ("PUT", "/boot-source", {"boot_args": ""}, "missing field `kernel_image_path`"),
    ("PUT", "/boot-source", {"kernel_image_path": 5}, "expected a string"),
    ("PUT", "/machine-config", {"vcpu_count": "2", "mem_size_mib": 1}, "expected an integer"),
    ("PUT", "/machine-config", {"vcpu_count": True, "mem_size_mib": 1}, "expected an integer"),
    ("PUT", "/machine-config", {"vcpu_count": 33, "mem_size_mib": 1}, "above the maximum"),
    ("PUT", "/drives/root", {"drive_id": "root", "is_root_device": "yes"}, "expected a boolean"),
    ("PUT", "/drives/root", {"drive_id": "other", "is_root_device": True},
     "does not match the id from the body"),
    ("PUT", "/drives/ro-ot", {"drive_id": "ro-ot", "is_root_device": True},
     "alphanumeric characters and underscores"),
    ("PUT", "/network-interfaces/eth0",
     {"iface_id": "eth0", "host_dev_name": "t", "guest_mac": "nope"}, "not a MAC address"),
    ("PUT", "/actions", {"action_type": "Reboot"}, "unknown variant `Reboot`"),
    ("PATCH", "/vm", {"state": "Stopped"}, "unknown variant"),
    ("PUT", "/vsock", {"guest_cid": 2, "uds_path": "/v"}, "below the minimum 3"),
    ("PUT", "/snapshot/load", {"snapshot_path": "/s"}, "either `mem_backend` or"),
    ("PUT", "/snapshot/load",
     {"snapshot_path": "/s", "mem_file_path": "/m",
      "mem_backend": {"backend_type": "File", "backend_path": "/m"}}, "too many fields"),
    ("PUT", "/snapshot/load",
     {"snapshot_path": "/s", "mem_backend": {"backend_type": "Disk", "backend_path": "/m"}},
     "unknown variant `Disk`"),
    ("GET", "/drives/x", {}, "Invalid request method and/or path"),
])
def test_validate_request_rejects(method: str, path: str, body: Any, expected: str) -> None:
    errors = validate_request(method, path, body)
    assert errors and expected in errors[0], errors


def test_open_objects_follow_firecracker_but_strict_mode_closes_them() -> None:
    # MetricsConfig has no deny_unknown_fields: Firecracker accepts extra keys there.
    body = {"metrics_path": "/m", "extra": True}
    assert validate_request("PUT", "/metrics", body) == []
    assert validate_request("PUT", "/metrics", body, strict=True) == [
        "body: unknown field `extra`"
    ]


def test_logger_level_is_case_insensitive() -> None:
    assert validate_request("PUT", "/logger", {"level": "debug"}) == []


# Responses

def _raw(status: str, body: bytes = b"", extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nServer: Firecracker API\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def test_no_content_is_success() -> None:
    response = fc.parse_response(_raw("204 No Content"))
    assert response.status == 204
    assert fc.check_response(fc.instance_start(), response) is None


def test_ok_returns_the_json_body() -> None:
    body = b'{"firecracker_version": "1.16.1"}'
    response = fc.parse_response(_raw("200 OK", body, "Content-Type: application/json\r\n"))
    assert fc.check_response(fc.Request("GET", "/version", {}), response) == {
        "firecracker_version": "1.16.1"
    }


def test_a_fault_becomes_a_banger_error_with_firecracker_words() -> None:
    fault = b'{"fault_message": "The requested operation is not supported after starting."}'
    response = fc.parse_response(_raw("400 Bad Request", fault))
    with pytest.raises(fc.FirecrackerError) as caught:
        fc.check_response(fc.put_boot_source("/k", ""), response)
    assert isinstance(caught.value, BangerError)
    assert caught.value.code == "firecracker_error"
    assert caught.value.message == (
        "firecracker refused PUT /boot-source: The requested operation is not supported "
        "after starting."
    )


def test_a_fault_without_json_still_says_something() -> None:
    response = fc.parse_response(_raw("500 Internal Server Error"))
    assert fc.fault_message(response) == "HTTP 500 Internal Server Error"


def test_partial_responses_ask_for_more() -> None:
    whole = _raw("400 Bad Request", b'{"fault_message": "x"}')
    for cut in (10, len(whole) - 3):
        with pytest.raises(fc.IncompleteResponse):
            fc.parse_response(whole[:cut])
    with pytest.raises(ValueError):
        fc.parse_response(b"garbage\r\n\r\n")


# Metrics

def test_metrics_lines_become_samples() -> None:
    line = json.dumps({
        "utc_timestamp_ms": 1700000000000,
        "block": {"read_bytes": 4096, "write_bytes": 512},
        "net": {"rx_bytes_count": 10, "tx_bytes_count": 20},
        "vcpu": {"exit_io_in": 3, "exit_mmio_read": 4, "failures": 1},
    })
    samples = fc.parse_metrics(line + "\n{partial\n" + json.dumps({"other": 1}) + "\n")
    assert samples == [fc.MetricsSample(1700000000000, 4096, 512, 10, 20, 7)]


# Backend choice

def test_auto_picks_firecracker_only_with_its_binary_and_real_kvm() -> None:
    assert choose_backend("auto", firecracker_found=True, kvm_real=True).name == "firecracker"
    assert choose_backend("auto", firecracker_found=True, kvm_real=False).name == "qemu"
    assert choose_backend("auto", firecracker_found=False, kvm_real=True).name == "qemu"
    explicit = choose_backend("firecracker", firecracker_found=False, kvm_real=False)
    assert explicit.name == "firecracker" and "config" in explicit.reason
    assert choose_backend("qemu", firecracker_found=True, kvm_real=True).name == "qemu"
