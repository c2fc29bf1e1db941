"""The stand-in keeps the rules of Firecracker v1.16 for the endpoints banger uses: if it
accepted what the real binary rejects, the backend tests against it would prove nothing.
(These run its pretend guest; the end-to-end test boots real guests through it.)"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from banger.core import firecracker as fc
from banger.host.vmm.firecracker import api_call
from tests.support.firecracker_standin import write_wrapper


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


class Running:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.sock = root / "api.sock"
        self.proc = subprocess.Popen(
            [str(write_wrapper(root / "bin", guest="none")), "--api-sock", str(self.sock),
             "--id", "test"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _accepts(self.sock):
            assert time.monotonic() < deadline, "the stand-in did not open its socket"
            time.sleep(0.02)
        for name in ("kernel", "initrd", "root.ext4", "log", "metrics"):
            (root / name).write_bytes(b"")

    def call(self, method: str, path: str, body: Any) -> tuple[int, dict[str, Any] | None]:
        request = fc.Request(method, path, body)

        async def send() -> tuple[int, dict[str, Any] | None]:
            reader, writer = await asyncio.open_unix_connection(str(self.sock))
            writer.write(request.encode())
            await writer.drain()
            data = b""
            while True:
                try:
                    response = fc.parse_response(data)
                    break
                except fc.IncompleteResponse:
                    chunk = await reader.read(65536)
                    assert chunk, "the stand-in closed the connection without an answer"
                    data += chunk
            writer.close()
            return response.status, json.loads(response.body) if response.body else None

        return asyncio.run(send())

    def ok(self, request: fc.Request) -> None:
        assert self.call(request.method, request.path, request.body) == (204, None)

    def fault(self, method: str, path: str, body: Any) -> str:
        status, reply = self.call(method, path, body)
        assert status == 400 and reply is not None, (status, reply)
        message: str = reply["fault_message"]
        return message

    def configure(self) -> None:
        self.ok(fc.put_boot_source(str(self.root / "kernel"), "console=ttyS0",
                                   str(self.root / "initrd")))
        self.ok(fc.put_machine_config(1, 256))
        self.ok(fc.put_drive("rootfs", str(self.root / "root.ext4"), is_root_device=True,
                             is_read_only=True))


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[Running]:
    running = Running(tmp_path)
    yield running
    running.proc.kill()
    running.proc.wait()


def test_a_whole_boot_answers_204_and_version_like_firecracker(standin: Running) -> None:
    standin.ok(fc.put_logger(str(standin.root / "log")))
    standin.ok(fc.put_metrics(str(standin.root / "metrics")))
    standin.configure()
    standin.ok(fc.put_entropy())
    standin.ok(fc.put_vsock(3, str(standin.root / "v.sock")))
    standin.ok(fc.instance_start())
    assert standin.call("GET", "/version", None) == (200, {"firecracker_version": "1.16.1"})
    assert standin.call("GET", "/", None)[1]["state"] == "Running"  # type: ignore[index]
    standin.ok(fc.send_ctrl_alt_del())
    assert standin.proc.wait(10) == 0  # it exits with its guest


def test_unknown_fields_and_wrong_types_are_400(standin: Running) -> None:
    assert "unknown field `bogus`" in standin.fault(
        "PUT", "/boot-source", {"kernel_image_path": "/k", "bogus": True}
    )
    assert "expected an integer" in standin.fault(
        "PUT", "/machine-config", {"vcpu_count": "1", "mem_size_mib": 128}
    )
    assert "missing field `is_root_device`" in standin.fault(
        "PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": "/x"}
    )
    assert "does not match" in standin.fault(
        "PUT", "/drives/a", {"drive_id": "b", "is_root_device": False, "path_on_host": "/x"}
    )
    assert "deserializing" in standin.fault("PUT", "/actions", "not json {")
    assert standin.fault("PUT", "/nonsense", {}).startswith("Invalid request method")


def test_files_it_cannot_open_are_refused(standin: Running) -> None:
    assert "kernel file cannot be opened" in standin.fault(
        "PUT", "/boot-source", {"kernel_image_path": str(standin.root / "missing")}
    )
    assert "Reinitialization" not in standin.fault(
        "PUT", "/metrics", {"metrics_path": str(standin.root / "missing")}
    )


def test_instance_start_only_once_and_pre_boot_endpoints_only_before_it(
    standin: Running,
) -> None:
    assert "without kernel configuration" in standin.fault(
        "PUT", "/actions", {"action_type": "InstanceStart"}
    )
    standin.configure()
    assert "not supported before starting" in standin.fault(
        "PATCH", "/vm", {"state": "Paused"}
    )
    assert "not supported before starting" in standin.fault(
        "PUT", "/actions", {"action_type": "SendCtrlAltDel"}
    )
    standin.ok(fc.instance_start())
    assert "not supported after starting" in standin.fault(
        "PUT", "/actions", {"action_type": "InstanceStart"}
    )
    assert "not supported after starting" in standin.fault(
        "PUT", "/boot-source", {"kernel_image_path": str(standin.root / "kernel")}
    )
    assert "not supported after starting" in standin.fault(
        "PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 256}
    )


def test_one_root_device_and_metrics_once(standin: Running) -> None:
    standin.configure()
    assert "root block device already exists" in standin.fault(
        "PUT", "/drives/second", {"drive_id": "second", "is_root_device": True,
                                  "path_on_host": str(standin.root / "root.ext4")}
    )
    standin.ok(fc.put_metrics(str(standin.root / "metrics")))
    assert "Reinitialization of metrics not allowed" in standin.fault(
        "PUT", "/metrics", {"metrics_path": str(standin.root / "metrics")}
    )


def test_snapshots_need_a_paused_vm_and_load_needs_a_fresh_process(
    standin: Running, tmp_path: Path
) -> None:
    standin.configure()
    assert "not allowed after configuring boot-specific resources" in standin.fault(
        "PUT", "/snapshot/load",
        {"snapshot_path": "/s", "mem_backend": {"backend_type": "File", "backend_path": "/m"}},
    )
    standin.ok(fc.instance_start())
    create = fc.snapshot_create(str(tmp_path / "state"), str(tmp_path / "mem"))
    assert "not paused" in standin.fault(create.method, create.path, create.body)
    standin.ok(fc.pause())
    standin.ok(create)
    standin.ok(fc.resume())
    assert (tmp_path / "state").exists() and (tmp_path / "mem").exists()


def test_the_backend_client_sees_the_same_faults(standin: Running) -> None:
    with pytest.raises(fc.FirecrackerError, match="kernel file cannot be opened"):
        asyncio.run(api_call(standin.sock, fc.put_boot_source("/nonexistent", "")))


def test_patch_drive_only_after_start_and_only_onto_its_own_file(standin: Running) -> None:
    standin.configure()
    patch = fc.patch_drive("rootfs", str(standin.root / "root.ext4"))
    assert "not supported before starting" in standin.fault(patch.method, patch.path, patch.body)
    standin.ok(fc.instance_start())
    standin.ok(patch)
    assert "unknown field `is_read_only`" in standin.fault(
        "PATCH", "/drives/rootfs", {"drive_id": "rootfs", "is_read_only": True}
    )
    (standin.root / "other.ext4").write_bytes(b"")
    other = fc.patch_drive("rootfs", str(standin.root / "other.ext4"))
    assert "only patch a drive to the file it already has" in standin.fault(
        other.method, other.path, other.body
    )


def test_load_overrides_the_tap_and_the_vsock_socket(tmp_path: Path) -> None:
    source = Running(tmp_path / "a")
    try:
        source.configure()
        source.ok(fc.put_vsock(3, str(source.root / "v.sock")))
        source.ok(fc.instance_start())
        source.ok(fc.pause())
        source.ok(fc.snapshot_create(str(tmp_path / "state"), str(tmp_path / "mem")))
    finally:
        source.proc.kill()
        source.proc.wait()
    target = Running(tmp_path / "b")
    try:
        unknown = fc.snapshot_load(str(tmp_path / "state"), str(tmp_path / "mem"),
                                   resume_vm=False, network_overrides={"eth9": "tap9"})
        assert "Unknown Network Device" in target.fault(unknown.method, unknown.path,
                                                         unknown.body)
        target.ok(fc.snapshot_load(str(tmp_path / "state"), str(tmp_path / "mem"),
                                   resume_vm=False, vsock_override=str(target.root / "v.sock")))
        assert (target.root / "v.sock").is_socket()
        assert target.call("GET", "/", None)[1]["state"] == "Paused"  # type: ignore[index]
        target.ok(fc.resume())
    finally:
        target.proc.kill()
        target.proc.wait()


def test_vsock_override_needs_a_vsock_device(standin: Running, tmp_path: Path) -> None:
    standin.configure()
    standin.ok(fc.instance_start())
    standin.ok(fc.pause())
    standin.ok(fc.snapshot_create(str(tmp_path / "state"), str(tmp_path / "mem")))
    fresh = Running(tmp_path / "fresh")
    try:
        load = fc.snapshot_load(str(tmp_path / "state"), str(tmp_path / "mem"),
                                resume_vm=False, vsock_override=str(tmp_path / "v.sock"))
        assert "Unknown Vsock Device" in fresh.fault(load.method, load.path, load.body)
    finally:
        fresh.proc.kill()
        fresh.proc.wait()


def test_a_vsock_connection_to_a_port_nothing_listens_on_is_closed(standin: Running) -> None:
    standin.configure()
    standin.ok(fc.put_vsock(3, str(standin.root / "v.sock")))
    standin.ok(fc.instance_start())
    for line in (b"CONNECT 22\n", b"CONNECT 1024\n"):  # (the pretend guest has no agent)
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(5)
            conn.connect(str(standin.root / "v.sock"))
            conn.sendall(line)
            assert conn.recv(64) == b""
