"""VMDir: the files of one VM (or template) directory, by name, for the daemon and every VMM
backend alike."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The guest's ssh host key pair: the daemon pins the public half, the guest gets both.
HOST_KEY = "ssh_host_ed25519_key"


@dataclass(frozen=True)
class VMDir:
    root: Path

    @property
    def root_disk(self) -> Path:
        """QEMU's qcow2 overlay; Firecracker keeps its own layout (banger.host.rootdisk)."""
        return self.root / "root.qcow2"

    @property
    def work_disk(self) -> Path:
        return self.root / "work.ext4"

    @property
    def work_staging(self) -> Path:
        """What goes onto the work disk while it is made."""
        return self.root / "work-staging"

    @property
    def host_key(self) -> Path:
        return self.root / HOST_KEY

    @property
    def host_key_pub(self) -> Path:
        return self.root / f"{HOST_KEY}.pub"

    @property
    def console_log(self) -> Path:
        return self.root / "console.log"

    @property
    def vmm_log(self) -> Path:
        return self.root / "vmm.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "vmm.pid"

    @property
    def control_socket(self) -> Path:
        """QEMU's QMP monitor."""
        return self.root / "control.sock"

    @property
    def agent_socket(self) -> Path:
        """QEMU's host end of banger-agent's virtio-serial port."""
        return self.root / "agent.sock"
