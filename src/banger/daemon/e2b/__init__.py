"""An endpoint the unmodified e2b SDK talks to, backed by banger VMs (docs/e2b.md):
control plane in control.py and sandboxes.py, envd's Process and Filesystem services over
the Connect protocol (core/connect.py) in processapi.py and fsapi.py, the listener and its
credentials in endpoint.py."""

from __future__ import annotations

from banger.daemon.e2b.endpoint import E2BEndpoint, install
from banger.daemon.e2b.files import GuestFiles
from banger.daemon.e2b.processes import SandboxProcesses
from banger.daemon.e2b.sandboxes import SandboxService
from banger.daemon.services import Services

__all__ = ["E2BEndpoint", "build_endpoint", "install"]


def build_endpoint(services: Services) -> E2BEndpoint:
    guest = services.guest_exec
    return E2BEndpoint(
        services.config, services.paths.config_dir, services.paths.state_dir,
        SandboxService(services.store, services.vms, guest),
        SandboxProcesses(services.guest_processes),
        GuestFiles(guest),
    )
