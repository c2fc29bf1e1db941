"""E2B sandboxes as banger VMs: create (warm start when the image has a template), connect,
kill, list, timeouts that delete the sandbox when they pass (kept in the store, so they
survive a daemon restart), pause/resume (the VMM paused in place)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import replace

from banger.core import guestapi
from banger.core.e2bwire import DEFAULT_HOME, DEFAULT_USER, SandboxRecord
from banger.core.errors import BangerError, GuestCommandFailed, SandboxNotFound, VMNotFound
from banger.daemon.guestexec import GuestExec
from banger.daemon.store import Store
from banger.daemon.vms import VMService
from banger.host.agentsession import Output

log = logging.getLogger("banger.e2b")

# How often the reaper looks for sandboxes whose timeout passed.
REAP_INTERVAL = 1.0
BASE_TEMPLATE = "base"

# The identity the SDK assumes, made at create through the agent (the image stays as it
# is): an unprivileged `user` with passwordless sudo, its home on the work disk (mounted
# at /root) bind-mounted on /home/user, also from fstab should the guest reboot.
IDENTITY_SETUP = f"""set -e
id {DEFAULT_USER} >/dev/null 2>&1 || useradd -M -d {DEFAULT_HOME} -s /bin/bash {DEFAULT_USER}
mkdir -p /root/.e2b-home {DEFAULT_HOME}
if [ ! -e /root/.e2b-home/.profile ]; then cp -a /etc/skel/. /root/.e2b-home/; fi
chown -R {DEFAULT_USER}: /root/.e2b-home
mountpoint -q {DEFAULT_HOME} || mount --bind /root/.e2b-home {DEFAULT_HOME}
grep -q ' {DEFAULT_HOME} ' /etc/fstab || \
  echo '/root/.e2b-home {DEFAULT_HOME} none bind,nofail 0 0' >> /etc/fstab
if [ -d /etc/sudoers.d ]; then
  echo '{DEFAULT_USER} ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/e2b-{DEFAULT_USER}
  chmod 440 /etc/sudoers.d/e2b-{DEFAULT_USER}
fi
"""


class SandboxService:
    def __init__(
        self, store: Store, vms: VMService, guest: GuestExec, identity_setup: str = IDENTITY_SETUP,
    ) -> None:
        self._identity_setup = identity_setup
        self._store = store
        self._vms = vms
        self._guest = guest
        self._records = {r.sandbox_id: r for r in store.list_sandboxes()}
        self._reaper: asyncio.Task[None] | None = None
        self._killing: set[str] = set()

    def get(self, sandbox_id: str) -> SandboxRecord:
        record = self._records.get(sandbox_id)
        if record is None or sandbox_id in self._killing:
            raise SandboxNotFound(f"sandbox {sandbox_id} not found")
        return record

    def all(self) -> list[SandboxRecord]:
        return [r for r in self._records.values() if r.sandbox_id not in self._killing]

    async def create(
        self, template: str | None, timeout: int, metadata: dict[str, str],
        envs: dict[str, str],
    ) -> SandboxRecord:
        image = None if template in (None, "", BASE_TEMPLATE) else template
        sandbox_id = "e2b-" + secrets.token_hex(6)
        vm = await self._vms.create(
            name=sandbox_id, image=image, vcpu=None, memory_mib=None, disk_size=None,
            start=True, login_check=False,
        )
        try:
            await self._run_as_root(sandbox_id, self._identity_setup)
        except BaseException:
            with contextlib.suppress(BangerError):
                await self._vms.delete(sandbox_id, force=True)
            raise
        now = time.time()
        record = SandboxRecord(
            sandbox_id=sandbox_id, vm=vm.name, template_id=template or BASE_TEMPLATE,
            access_token=secrets.token_hex(24), started_at=now, end_at=now + timeout,
            cpu_count=vm.spec.vcpu, memory_mb=vm.spec.memory_mib,
            disk_size_mb=vm.spec.disk_size_bytes // (1 << 20),
            metadata=dict(metadata), envs=dict(envs),
        )
        self._save(record)
        return record

    async def connect(self, sandbox_id: str, timeout: int) -> SandboxRecord:
        """Resume a paused sandbox; its deadline moves to at least `timeout` from now."""
        record = self.get(sandbox_id)
        if record.paused:
            await self._vms.resume(record.vm)
        record = replace(record, paused=False, end_at=max(record.end_at, time.time() + timeout))
        self._save(record)
        return record

    def set_timeout(self, sandbox_id: str, timeout: int) -> None:
        self._save(replace(self.get(sandbox_id), end_at=time.time() + timeout))

    async def pause(self, sandbox_id: str) -> None:
        record = self.get(sandbox_id)
        await self._vms.pause(record.vm)
        self._save(replace(record, paused=True))

    async def kill(self, sandbox_id: str) -> None:
        record = self.get(sandbox_id)
        self._killing.add(sandbox_id)
        try:
            with contextlib.suppress(VMNotFound):
                await self._vms.delete(record.vm, force=True)
            self._store.delete_sandbox(sandbox_id)
            self._records.pop(sandbox_id, None)
        finally:
            self._killing.discard(sandbox_id)

    def start_reaper(self) -> None:
        self._reaper = asyncio.create_task(self._reap_forever())

    async def stop_reaper(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper

    async def reap(self, now: float) -> None:
        """Delete the sandboxes whose timeout passed, and forget those whose VM is gone."""
        known_vms = {vm.name for vm in self._vms.all()}
        for record in list(self.all()):
            if record.vm not in known_vms:
                self._store.delete_sandbox(record.sandbox_id)
                self._records.pop(record.sandbox_id, None)
            elif record.end_at <= now:
                log.info("sandbox %s reached its timeout; deleting it", record.sandbox_id)
                try:
                    await self.kill(record.sandbox_id)
                except BangerError as exc:
                    log.warning("could not delete sandbox %s: %s", record.sandbox_id, exc)

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(REAP_INTERVAL)
            await self.reap(time.time())

    def _save(self, record: SandboxRecord) -> None:
        self._store.put_sandbox(record)
        self._records[record.sandbox_id] = record

    async def _run_as_root(self, vm: str, script: str) -> None:
        errors = bytearray()

        async def keep(piece: Output) -> None:
            errors.extend(piece.data if piece.stderr else b"")

        result = await self._guest.run(vm, guestapi.ExecVM(argv=["/bin/sh", "-c", script]), keep)
        if result.exit_code != 0:
            raise GuestCommandFailed(
                f"setting up the sandbox's user failed: {errors.decode(errors='replace')}")
