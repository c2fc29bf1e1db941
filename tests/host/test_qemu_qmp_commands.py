"""QEMU pause/resume/reset are QMP `stop`/`cont`/`system_reset` on the VM's control socket."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

from banger.host.vmm.base import Pauses, Resets, Snapshots
from banger.host.vmm.qemu import QemuHypervisor


async def test_pause_resume_and_reset_send_stop_cont_and_system_reset() -> None:
    commands: list[str] = []

    async def qmp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
        while line := await reader.readline():
            commands.append(json.loads(line)["execute"])
            writer.write(b'{"return": {}}\n')
            await writer.drain()
        writer.close()

    with tempfile.TemporaryDirectory(prefix="bgr-", dir="/tmp") as tmp:
        vm_dir = Path(tmp)
        server = await asyncio.start_unix_server(qmp, str(vm_dir / "control.sock"))
        async with server:
            qemu = QemuHypervisor()
            await qemu.pause(vm_dir)
            await qemu.resume(vm_dir)
            await qemu.reset(vm_dir)
    assert commands == [
        "qmp_capabilities", "stop", "qmp_capabilities", "cont", "qmp_capabilities", "system_reset"
    ]


def test_qemu_pauses_and_resets_but_has_no_snapshots() -> None:
    assert isinstance(QemuHypervisor(), Pauses)
    assert isinstance(QemuHypervisor(), Resets)
    assert not isinstance(QemuHypervisor(), Snapshots)
