"""A stand-in for the `firecracker` binary (v1.16 API), for machines without Firecracker or
real KVM. A test helper, not product code.

It is started exactly like the real binary (`firecracker --api-sock PATH --id ID`, or
`--version`, or by the jailer with its start-time options), serves the same API on the same
socket with the same status codes (204 on success, 400 with {"fault_message"} otherwise),
rejects what Firecracker v1.16 rejects for the endpoints banger uses (unknown fields where
Firecracker denies them, wrong types, bad ids, pre-boot-only requests after InstanceStart,
InstanceStart twice, post-boot-only ones before it, snapshot load after boot resources,
files it cannot open), and on InstanceStart boots the configured ELF kernel, initrd, drives
and TAP with QEMU `-M microvm` under TCG. The kernel command line gets what Firecracker adds
(`root=/dev/vda ro|rw`), plus `tsc_early_khz=` since TCG, unlike KVM, needs it.
SendCtrlAltDel becomes an ACPI power-off (QMP system_powerdown); PATCH /vm Paused/Resumed
are QMP stop/cont. The process exits when the guest does, like Firecracker.

Snapshots. The guest's RAM is a memfd the stand-in holds (QEMU maps it shared), so a full
snapshot writes it to mem_file_path as Firecracker does (sparse); snapshot_path holds the
device configuration (a JSON line) and QEMU's migration stream of the device state
(`x-ignore-shared`: RAM not included). A load maps mem_file_path copy-on-write (QEMU
`memory-backend-file,share=off`, what Firecracker's MAP_PRIVATE mapping does: VMs loaded from
one file share its untouched pages) and loads the device state onto it. A VM loaded that way
has no RAM of its own to write out: its snapshots carry the RAM in the migration stream.

Vsock. Without vhost-vsock on the host, the guest gets no vsock device. The stand-in binds the
vsock uds_path as Firecracker does and answers `CONNECT 1024` (banger-agent's port) with
`OK <port>`, then bridges the connection to a virtio-serial port named org.banger.agent in
its guest, which banger-agent prefers when it finds one. So the guest's AF_VSOCK side is never
exercised here, only the host side of the protocol.

BANGER_STANDIN_GUEST=none replaces QEMU with a pretend guest (for fast API tests): it "runs"
until SendCtrlAltDel or a signal.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import itertools
import json
import os
import shlex
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from banger.core import agent
from banger.core.confine import TCG_CACHE_MIB
from banger.host.hostinfo import tsc_khz
from tests.support.firecracker_api import find_endpoint, validate_request

VERSION = "1.16.1"
NOT_STARTED, RUNNING, PAUSED = "Not started", "Running", "Paused"
_IGNORE_SHARED = [{"capability": "x-ignore-shared", "state": True}]


def _link(name: str, *flags: str) -> dict[str, Any] | None:
    """`ip link show` of a device in this network namespace, over netlink: /sys shows the
    namespace it was mounted in, which need not be this process's one."""
    shown = subprocess.run(
        ["ip", *flags, "-json", "link", "show", "dev", name], capture_output=True, text=True,
        check=False,
    )
    if shown.returncode != 0:
        return None
    links: list[dict[str, Any]] = json.loads(shown.stdout)
    return links[0] if links else None


def _tap_bytes(name: str) -> tuple[int, int]:
    """Bytes the device sent and received (0, 0 once it is gone)."""
    link = _link(name, "-s")
    if link is None:
        return 0, 0
    stats = link.get("stats64", {})
    return int(stats.get("tx", {}).get("bytes", 0)), int(stats.get("rx", {}).get("bytes", 0))


def _is_tap(name: str) -> bool:
    """A TUN/TAP device of that name in this network namespace (what Firecracker's open
    of the device checks)."""
    link = _link(name, "-d")
    return link is not None and link.get("linkinfo", {}).get("info_kind") == "tun"


class Fault(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class QMP:
    def __init__(self, path: Path) -> None:
        self._sock = socket.socket(socket.AF_UNIX)
        self._sock.settimeout(30)
        # The socket file appears at QEMU's bind(), a moment before it listens.
        deadline = time.monotonic() + 10
        while True:
            try:
                self._sock.connect(str(path))
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self._file = self._sock.makefile("rwb")
        self._file.readline()
        self.command("qmp_capabilities")

    def command(self, name: str, **arguments: Any) -> Any:
        message: dict[str, Any] = {"execute": name}
        if arguments:
            message["arguments"] = arguments
        self._file.write(json.dumps(message).encode() + b"\n")
        self._file.flush()
        while True:
            reply = json.loads(self._file.readline())
            if "event" in reply:
                continue
            if "error" in reply:
                raise Fault(f"QMP {name}: {reply['error'].get('desc')}")
            return reply.get("return")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


def _die_with_parent() -> None:
    # The guest must not outlive the stand-in, even when it is SIGKILLed.
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Machine:
    """The VM the API configures: Firecracker's state rules, QEMU underneath."""

    def __init__(self, instance_id: str, api_sock: Path, guest_mode: str) -> None:
        self.instance_id = instance_id
        self.api_sock = api_sock
        self.guest_mode = guest_mode
        self.state = NOT_STARTED
        self.boot_path = False
        self.boot_source: dict[str, Any] | None = None
        self.machine = {"vcpu_count": 1, "mem_size_mib": 128, "smt": False}
        self.drives: dict[str, dict[str, Any]] = {}
        self.nets: dict[str, dict[str, Any]] = {}
        self.entropy = False
        self.vsock: dict[str, Any] | None = None
        self.vsock_listener: socket.socket | None = None
        self.vsock_ports = itertools.count(1 << 30)  # Firecracker's host-side ports
        # The guest's RAM (a memfd) when the stand-in booted it; None for a loaded guest.
        self.ram_fd: int | None = None
        self.serial_out: str | None = None
        self.log_path: str | None = None
        self.metrics_path: str | None = None
        self.qemu: subprocess.Popen[bytes] | None = None
        self.qmp: QMP | None = None
        self.lock = threading.Lock()
        self.exiting = threading.Event()
        self.exit_after_response = False
        self._last_counters = (0, 0, 0, 0)

    # Logging, metrics

    def log(self, message: str) -> None:
        if self.log_path:
            with contextlib.suppress(OSError), open(self.log_path, "a") as f:
                f.write(f"[{self.instance_id}:stand-in:INFO] {message}\n")

    def flush_metrics(self) -> None:
        if not self.metrics_path:
            return
        read = written = rx = tx = 0
        if self.qmp is not None:
            with contextlib.suppress(Fault, OSError):
                for device in self.qmp.command("query-blockstats"):
                    read += device["stats"]["rd_bytes"]
                    written += device["stats"]["wr_bytes"]
        for net in self.nets.values():
            sent, received = _tap_bytes(net["host_dev_name"])
            rx += sent  # the TAP sends what the guest gets
            tx += received
        last = self._last_counters
        self._last_counters = (read, written, rx, tx)
        line = {
            "utc_timestamp_ms": int(time.time() * 1000),
            "block": {"read_bytes": read - last[0], "write_bytes": written - last[1]},
            "net": {"rx_bytes_count": rx - last[2], "tx_bytes_count": tx - last[3]},
            "vcpu": {"exit_io_in": 0, "exit_io_out": 0, "exit_mmio_read": 0},
        }
        with contextlib.suppress(OSError), open(self.metrics_path, "a") as f:
            f.write(json.dumps(line) + "\n")

    # The API

    def handle(self, method: str, path: str, raw: bytes) -> tuple[int, dict[str, Any] | None]:
        if method == "GET" and path == "/":
            return 200, {"id": self.instance_id, "state": self.state,
                         "vmm_version": VERSION, "app_name": "Firecracker"}
        if method == "GET" and path == "/version":
            return 200, {"firecracker_version": VERSION}
        if method in ("PUT", "PATCH") and not raw:
            return _fault(f"Empty {method} request.")
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return _fault("An error occurred when deserializing the json body of a request: "
                          f"{exc}.")
        errors = validate_request(method, path, body)
        if errors:
            return _fault(errors[0] if errors[0].endswith(("!", ".")) else
                          "An error occurred when deserializing the json body of a request: "
                          f"{errors[0]}.")
        found = find_endpoint(method, path)
        assert found is not None
        endpoint = found[0]
        started = self.state != NOT_STARTED
        if endpoint.pre_boot_only and started:
            return _fault("The requested operation is not supported after starting the microVM.")
        if endpoint.post_boot_only and not started:
            return _fault("The requested operation is not supported before starting the "
                          "microVM.")
        try:
            self._apply(endpoint.schema, body)
        except OSError as exc:
            return _fault(f"Internal VMM error: {exc}")
        except Fault as exc:
            self.log(f"Received Error. Status code: 400 Bad Request. Message: {exc.message}")
            return _fault(exc.message)
        self.log(f"The API request {method} {path} was executed successfully.")
        return 204, None

    def _apply(self, schema: str, body: dict[str, Any]) -> None:
        handler = getattr(self, f"_put_{schema}")
        handler(body)

    def _put_Logger(self, body: dict[str, Any]) -> None:
        path = body.get("log_path")
        if path is not None:
            _open_existing(path, "Logger error: Failed to open target file")
            self.log_path = path
        self.log(f"Running Firecracker v{VERSION} (stand-in)")

    def _put_Metrics(self, body: dict[str, Any]) -> None:
        if self.metrics_path is not None:
            raise Fault("Metrics error: Cannot initialize the metrics system due to bad user "
                        "input: Reinitialization of metrics not allowed.")
        _open_existing(body["metrics_path"], "Metrics error: Cannot initialize the metrics "
                       "system due to bad user input")
        self.metrics_path = body["metrics_path"]

    def _put_SerialDevice(self, body: dict[str, Any]) -> None:
        self.serial_out = body.get("serial_out_path")

    def _put_BootSource(self, body: dict[str, Any]) -> None:
        self.boot_path = True
        _open_existing(body["kernel_image_path"],
                       "Boot source error: The kernel file cannot be opened")
        if "initrd_path" in body:
            _open_existing(body["initrd_path"], "Boot source error: The initrd file cannot be "
                           "opened due to invalid path or invalid permissions.")
        self.boot_source = body

    def _put_MachineConfiguration(self, body: dict[str, Any]) -> None:
        self.boot_path = True
        if body.get("smt") and body["vcpu_count"] > 1 and body["vcpu_count"] % 2:
            raise Fault("Machine config error: The number of vCPUs must be greater than 0, "
                        "less than 32 and must be 1 or an even number if SMT is enabled.")
        self.machine = {"smt": False, **body}

    def _put_Drive(self, body: dict[str, Any]) -> None:
        self.boot_path = True
        drive_id = body["drive_id"]
        if body["is_root_device"] and any(
            d["is_root_device"] for i, d in self.drives.items() if i != drive_id
        ):
            raise Fault("Drive config error: A root block device already exists!")
        if "path_on_host" not in body:
            raise Fault("Drive config error: Unable to create the virtio block device: "
                        "missing path_on_host")
        _open_existing(body["path_on_host"], "Drive config error: Unable to create the block "
                       "device: Virtio backend error: Error manipulating the backing file",
                       write=not body.get("is_read_only", False))
        self.drives[drive_id] = body

    def _put_NetworkInterface(self, body: dict[str, Any]) -> None:
        self.boot_path = True
        tap = body["host_dev_name"]
        # The pretend guest has no network to check.
        if self.guest_mode != "none" and not _is_tap(tap):
            raise Fault(f"Network config error: Cannot open/create the tap device: Open tap "
                        f"device failed: Error while creating ifreq structure: No such device "
                        f"(os error 19). Invalid TUN/TAP Backend provided by {tap}. Check our "
                        "documentation on setting up the network devices.")
        mac = body.get("guest_mac")
        if mac and any(n.get("guest_mac") == mac for i, n in self.nets.items()
                       if i != body["iface_id"]):
            raise Fault(f"Network config error: The MAC address is already in use: {mac}")
        self.nets[body["iface_id"]] = body

    def _put_EntropyDevice(self, body: dict[str, Any]) -> None:
        self.boot_path = True
        self.entropy = True

    def _put_Vsock(self, body: dict[str, Any]) -> None:
        self.boot_path = True
        self._listen_vsock(body["uds_path"])
        self.vsock = body

    def _listen_vsock(self, uds_path: str) -> None:
        # Firecracker binds uds_path itself; so does the stand-in (see the module doc).
        listener = socket.socket(socket.AF_UNIX)
        try:
            listener.bind(uds_path)
            listener.listen(8)
        except OSError as exc:
            listener.close()
            raise Fault(f"Vsock config error: Cannot create backend for vsock device: "
                        f"Error binding to the host-side Unix socket: {exc}") from None
        if self.vsock_listener is not None:
            self.vsock_listener.close()
        self.vsock_listener = listener
        threading.Thread(target=self._accept_vsock, args=(listener,), daemon=True).start()

    def _accept_vsock(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._vsock_connection, args=(conn,), daemon=True).start()

    def _vsock_connection(self, conn: socket.socket) -> None:
        """One host-initiated connection: `CONNECT <port>`, then the guest's stream. Only
        banger-agent's port has a listener in the guest; Firecracker closes the others."""
        guest = None
        try:
            conn.settimeout(30)
            line = b""
            while not line.endswith(b"\n") and len(line) < 64:
                chunk = conn.recv(1)
                if not chunk:
                    return
                line += chunk
            words = line.decode(errors="replace").split()
            if words != ["CONNECT", str(agent.VSOCK_PORT)] or self.qemu is None:
                return
            guest = socket.socket(socket.AF_UNIX)
            guest.connect(str(self._agent_chardev))
            conn.sendall(f"OK {next(self.vsock_ports)}\n".encode())
            conn.settimeout(None)
            _bridge(conn, guest)
        except OSError:
            return
        finally:
            conn.close()
            if guest is not None:
                guest.close()

    @property
    def _agent_chardev(self) -> Path:
        return self.api_sock.with_name(self.api_sock.name + ".ser")

    def _put_InstanceActionInfo(self, body: dict[str, Any]) -> None:
        kind = body["action_type"]
        started = self.state != NOT_STARTED
        if kind == "InstanceStart":
            if started:
                raise Fault("The requested operation is not supported after starting the "
                            "microVM.")
            if self.boot_source is None:
                raise Fault("Start microvm error: Cannot start microvm without kernel "
                            "configuration.")
            self._boot(self._config())
            self.state = RUNNING
            return
        if not started:
            raise Fault("The requested operation is not supported before starting the "
                        "microVM.")
        if kind == "FlushMetrics":
            self.flush_metrics()
        elif kind == "SendCtrlAltDel":
            self.log("Sending CTRL+ALT+DEL to the guest")
            if self.qmp is not None:
                self.qmp.command("system_powerdown")
            else:
                self.exit_after_response = True  # the pretend guest powers off at once

    def _put_Vm(self, body: dict[str, Any]) -> None:
        if body["state"] == "Paused":
            if self.qmp is not None:
                self.qmp.command("stop")
            self.state = PAUSED
        else:
            if self.qmp is not None:
                self.qmp.command("cont")
            self.state = RUNNING

    def _put_PartialDrive(self, body: dict[str, Any]) -> None:
        drive = self.drives.get(body["drive_id"])
        if drive is None:
            raise Fault("Drive config error: Unable to patch the block device: Device not "
                        "found.")
        if "path_on_host" not in body:
            return
        path = body["path_on_host"]
        _open_existing(path, "Drive config error: Unable to patch the block device: Virtio "
                       "backend error: Error manipulating the backing file",
                       write=not drive.get("is_read_only", False))
        # Firecracker reopens the file and raises the config-change interrupt. QEMU cannot
        # swap a -drive's file in place: the stand-in supports the same file (banger
        # re-points a drive at itself so the guest reads its size again), via block_resize.
        if not os.path.samefile(path, drive["path_on_host"]):
            raise Fault("the stand-in can only patch a drive to the file it already has")
        if self.qmp is not None:
            self.qmp.command("block_resize", device=drive["drive_id"],
                             size=os.stat(path).st_size)
        drive["path_on_host"] = path

    def _put_SnapshotCreateParams(self, body: dict[str, Any]) -> None:
        if self.state != PAUSED:
            raise Fault("Create snapshot error: Cannot save the microVM state: Cannot save "
                        "the state of a vCPU that is not paused.")
        if body.get("snapshot_type", "Full") != "Full":
            raise Fault("Create snapshot error: Diff snapshots need track_dirty_pages.")
        memory, state = body["mem_file_path"], body["snapshot_path"]
        size = self.machine["mem_size_mib"] << 20
        Path(state).write_text(json.dumps(self._config()) + "\n")
        if self.qmp is not None:
            self.qmp.command("migrate-set-capabilities", capabilities=_IGNORE_SHARED)
            self.qmp.command("migrate", uri=f"exec:cat >> {shlex.quote(state)}")
            self._wait_migration()
        if self.ram_fd is not None:
            _copy_sparse(self.ram_fd, memory, size)
        else:
            with open(memory, "wb") as f:
                f.truncate(size)  # a loaded guest's RAM went into the stream

    def _put_SnapshotLoadParams(self, body: dict[str, Any]) -> None:
        if self.boot_path:
            raise Fault("Load snapshot error: Loading a microVM snapshot not allowed after "
                        "configuring boot-specific resources.")
        memory = body.get("mem_backend", {}).get("backend_path") or body.get("mem_file_path")
        state = body["snapshot_path"]
        try:
            with open(state, "rb") as f:
                head = f.readline()
            config = json.loads(head)
            _open_existing(memory, "memory")
        except (OSError, ValueError, Fault) as exc:
            raise Fault(f"Load snapshot error: Failed to restore from snapshot: Failed to "
                        f"load snapshot state from file: {exc}") from None
        for override in body.get("network_overrides", []):
            if override["iface_id"] not in config["nets"]:
                raise Fault("Load snapshot error: Failed to restore from snapshot: Failed to "
                            "get snapshot state from file: Unknown Network Device.")
            config["nets"][override["iface_id"]]["host_dev_name"] = override["host_dev_name"]
        if "vsock_override" in body:
            if config.get("vsock") is None:
                raise Fault("Load snapshot error: Failed to restore from snapshot: Failed to "
                            "get snapshot state from file: Unknown Vsock Device.")
            config["vsock"]["uds_path"] = body["vsock_override"]["uds_path"]
        config["serial_out"] = self.serial_out
        for drive in config["drives"].values():
            # Firecracker opens the recorded paths again (relative ones from its cwd).
            _open_existing(drive["path_on_host"], "Load snapshot error: Failed to restore from "
                           "snapshot: Failed to build microVM from snapshot: Block device "
                           "error", write=not drive.get("is_read_only", False))
        if config.get("vsock") is not None:
            self._listen_vsock(config["vsock"]["uds_path"])
        # What a snapshot of the loaded VM records again (the stand-in's QEMU needs the kernel).
        self.boot_source, self.machine = config["boot_source"], config["machine"]
        self.drives, self.nets = config["drives"], config["nets"]
        self.entropy, self.vsock = config["entropy"], config.get("vsock")
        self._boot(config, memory=memory, stream=(state, len(head)))
        self.state = PAUSED
        if body.get("resume_vm"):
            self._put_Vm({"state": "Resumed"})

    # The guest

    def _config(self) -> dict[str, Any]:
        return {
            "boot_source": self.boot_source, "machine": self.machine, "drives": self.drives,
            "nets": self.nets, "entropy": self.entropy, "vsock": self.vsock,
            "serial_out": self.serial_out,
        }

    def _boot(
        self, config: dict[str, Any], memory: str | None = None,
        stream: tuple[str, int] | None = None,
    ) -> None:
        """Start the guest: booting (its RAM a fresh memfd), or loaded from a snapshot
        (`memory` mapped copy-on-write, the device state from `stream`: file, offset)."""
        if self.guest_mode == "none":
            return
        qmp_path = self.api_sock.with_name(self.api_sock.name + ".qmp")
        for stale in (qmp_path, self._agent_chardev):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        if memory is None:
            self.ram_fd = os.memfd_create("standin-ram", 0)
            os.ftruncate(self.ram_fd, config["machine"]["mem_size_mib"] << 20)
            memory = f"/proc/self/fd/{self.ram_fd}"
        argv = qemu_argv(
            config, qmp_path, memory=memory, shared=self.ram_fd is not None,
            agent_chardev=self._agent_chardev if config.get("vsock") else None,
            incoming=stream is not None,
        )
        self.log("launching " + " ".join(shlex.quote(a) for a in argv))
        self.qemu = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
            pass_fds=() if self.ram_fd is None else (self.ram_fd,),
        )
        try:
            deadline = time.monotonic() + 30
            while not qmp_path.exists():
                if self.qemu.poll() is not None or time.monotonic() > deadline:
                    raise Fault("Start microvm error: the guest (QEMU) did not start; see the "
                                "firecracker process output")
                time.sleep(0.05)
            self.qmp = QMP(qmp_path)
            if stream is not None:
                path, offset = stream
                self.qmp.command("migrate-set-capabilities", capabilities=_IGNORE_SHARED)
                self.qmp.command(
                    "migrate-incoming", uri=f"exec:tail -c +{offset + 1} {shlex.quote(path)}"
                )
                self._wait_migration(incoming=True)
        except Fault:
            # Like Firecracker's own failed load: nothing of the guest is left (its TAP is
            # free for the next process) by the time the fault is answered.
            self.qemu.kill()
            self.qemu.wait()
            self.qemu = None
            raise
        threading.Thread(target=self._watch_guest, daemon=True).start()

    def _wait_migration(self, incoming: bool = False) -> None:
        assert self.qmp is not None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            status = self.qmp.command("query-migrate").get("status")
            if status == "completed":
                return
            if status == "failed":
                raise Fault("Load snapshot error: the device state does not load" if incoming
                            else "Create snapshot error: writing the microVM state failed")
            if incoming and status is None and self.qmp.command("query-status")["status"] in (
                "paused", "running"
            ):
                return
            time.sleep(0.1)
        raise Fault("snapshot timed out")

    def _watch_guest(self) -> None:
        assert self.qemu is not None
        self.qemu.wait()
        self.exiting.set()

    def shutdown(self) -> None:
        if self.qemu is not None and self.qemu.poll() is None:
            self.qemu.kill()
            self.qemu.wait()
        if self.vsock_listener is not None:
            self.vsock_listener.close()
            with contextlib.suppress(FileNotFoundError, TypeError):
                os.unlink(self.vsock["uds_path"] if self.vsock else "")


def qemu_argv(
    config: dict[str, Any], qmp_path: Path, *, memory: str, shared: bool,
    agent_chardev: Path | None, incoming: bool,
) -> list[str]:
    """Firecracker's machine as QEMU microvm (the device set of banger's QEMU backend), its
    RAM in the file `memory`, mapped shared or copy-on-write."""
    boot = config["boot_source"]
    machine = config["machine"]
    drives = list(config["drives"].values())
    # Firecracker attaches the root drive first, then the others in the order they came.
    drives.sort(key=lambda d: not d["is_root_device"])
    cmdline = boot.get("boot_args", "reboot=k panic=1 pci=off nomodule 8250.nr_uarts=0 "
                       "i8042.noaux i8042.nomux i8042.dumbkbd swiotlb=noforce")
    for drive in drives:
        if drive["is_root_device"]:
            root = f"PARTUUID={drive['partuuid']}" if "partuuid" in drive else "/dev/vda"
            cmdline += f" root={root} {'ro' if drive.get('is_read_only') else 'rw'}"
    tsc = tsc_khz()
    if tsc:
        cmdline += f" tsc_early_khz={tsc}"
    serial = config.get("serial_out")
    argv = [
        "qemu-system-x86_64",
        "-M", "microvm,pit=on,pic=on,rtc=on,x-option-roms=off,memory-backend=mem",
        # A bounded translation cache, as banger's own QEMU has: QEMU 7.2's default (1 GiB)
        # would not fit the memory ceiling of a jailed VM's cgroup (guest RAM + 192 MiB).
        "-accel", f"tcg,tb-size={TCG_CACHE_MIB}", "-cpu", "max",
        "-smp", str(machine["vcpu_count"]), "-m", str(machine["mem_size_mib"]),
        "-nodefaults", "-no-user-config", "-nographic",
        "-kernel", boot["kernel_image_path"],
        *(["-initrd", boot["initrd_path"]] if "initrd_path" in boot else []),
        "-append", cmdline,
        "-object", f"memory-backend-file,id=mem,size={machine['mem_size_mib']}M,"
        f"mem-path={memory},share={'on' if shared else 'off'}",
        "-chardev", f"file,id=console,path={serial}" if serial else "stdio,id=console,signal=off",
        "-serial", "chardev:console",
    ]
    for drive in drives:
        readonly = "on" if drive.get("is_read_only") else "off"
        argv += [
            "-drive", f"id={drive['drive_id']},file={drive['path_on_host']},format=raw,"
            f"if=none,readonly={readonly}",
            "-device", f"virtio-blk-device,drive={drive['drive_id']}",
        ]
    for net in config["nets"].values():
        device = f"virtio-net-device,netdev={net['iface_id']}"
        if net.get("guest_mac"):
            device += f",mac={net['guest_mac']}"
        argv += [
            "-netdev", f"tap,id={net['iface_id']},ifname={net['host_dev_name']},script=no,"
            "downscript=no",
            "-device", device,
        ]
    if config.get("entropy"):
        argv += ["-object", "rng-random,id=rng0,filename=/dev/urandom",
                 "-device", "virtio-rng-device,rng=rng0"]
    if agent_chardev is not None:
        # The vsock device's stand-in (see the module doc).
        argv += [
            "-device", "virtio-serial-device",
            "-chardev", f"socket,id=agent,path={agent_chardev},server=on,wait=off",
            "-device", f"virtserialport,chardev=agent,name={agent.PORT_NAME}",
        ]
    argv += ["-qmp", f"unix:{qmp_path},server=on,wait=off"]
    if incoming:
        argv += ["-S", "-incoming", "defer"]  # paused until PATCH /vm Resumed
    return argv


def _bridge(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""

    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    other = threading.Thread(target=pump, args=(b, a), daemon=True)
    other.start()
    pump(a, b)
    other.join()


def _copy_sparse(fd: int, target: str, size: int) -> None:
    """The first `size` bytes of `fd` into a new sparse file: only its data extents, and of
    those only the blocks that are not all zeros."""
    block = 1 << 16
    zeros = bytes(block)
    with open(target, "wb") as out:
        out.truncate(size)
        offset = 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after offset
                break
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            for pos in range(start, end, block):
                data = os.pread(fd, min(block, end - pos), pos)
                if data != zeros[: len(data)]:
                    out.seek(pos)
                    out.write(data)
            offset = end


def _fault(message: str) -> tuple[int, dict[str, Any]]:
    return 400, {"fault_message": message}


def _open_existing(path: str | None, message: str, *, write: bool = False) -> None:
    try:
        if path is None:
            raise FileNotFoundError(2, "No such file or directory")
        fd = os.open(path, os.O_RDWR if write else os.O_RDONLY)
        os.close(fd)
    except OSError as exc:
        raise Fault(f"{message}: {exc.strerror} (os error {exc.errno})") from None


class _Server(socketserver.UnixStreamServer):
    machine: Machine


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        machine = self.server.machine
        with machine.lock:
            status, body = machine.handle(self.command, self.path, raw)
        payload = json.dumps(body).encode() if body is not None else b""
        self.send_response(status, {200: "OK", 204: "No Content"}.get(status, "Bad Request"))
        self.send_header("Server", "Firecracker API")
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        try:
            self.end_headers()
            if payload:
                self.wfile.write(payload)
            self.wfile.flush()
        except BrokenPipeError:
            # A 204 is complete after its headers: the client may be gone already.
            self.close_connection = True
        finally:
            if machine.exit_after_response:
                machine.exiting.set()

    do_GET = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        return


def write_wrapper(directory: Path, guest: str = "qemu") -> Path:
    """A `firecracker` executable in `directory` that runs this stand-in."""
    directory.mkdir(parents=True, exist_ok=True)
    wrapper = directory / "firecracker"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"BANGER_STANDIN_GUEST={guest} exec {shlex.quote(sys.executable)} "
        f"{shlex.quote(str(Path(__file__).resolve()))} \"$@\"\n"
    )
    wrapper.chmod(0o755)
    return wrapper


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="firecracker", add_help=False)
    parser.add_argument("--api-sock")
    parser.add_argument("--id", default="anonymous-instance")
    parser.add_argument("--version", action="store_true")
    # What the jailer adds (tests/support/jailer_standin.py): accepted, like the real binary.
    parser.add_argument("--start-time-us")
    parser.add_argument("--start-time-cpu-us")
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        print("Arguments parsing error: unexpected arguments", file=sys.stderr)
        return 1
    if args.version:
        print(f"Firecracker v{VERSION}\n")
        return 0
    if not args.api_sock:
        print("Arguments parsing error: --api-sock is required by this stand-in",
              file=sys.stderr)
        return 1
    api_sock = Path(args.api_sock)
    machine = Machine(args.id, api_sock, os.environ.get("BANGER_STANDIN_GUEST", "qemu"))
    try:
        server = _Server(str(api_sock), _Handler)
    except OSError as exc:
        print(f"Failed to open the API socket at {api_sock}: {exc}", file=sys.stderr)
        return 1
    server.machine = machine
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: machine.exiting.set())

    def metrics_loop() -> None:
        while not machine.exiting.wait(60):
            if machine.state != NOT_STARTED:
                with machine.lock:
                    machine.flush_metrics()

    threading.Thread(target=metrics_loop, daemon=True).start()
    machine.exiting.wait()
    machine.log("Firecracker exiting successfully. exit_code=0")
    machine.shutdown()
    server.server_close()
    with contextlib.suppress(FileNotFoundError):
        api_sock.unlink()
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    # Exit now, like the real binary: no waiting on the server's threads at interpreter exit.
    os._exit(code)
