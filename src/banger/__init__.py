"""banger: one-command development sandboxes on microVMs.

`import banger` is the Python SDK: `banger.Client` talks to bangerd, its answers are the
models here (`banger.VM`, `banger.Image`, ...), and its errors are the `banger.BangerError`
tree, each with a stable `code` and a `hint`. The names load on first use (module
`__getattr__`): this package is imported by every `banger` call, and the models would
cost that call milliseconds it does not need.

    import banger

    client = banger.Client()
    vm = client.create_vm(name="dev")  # a banger.VM, running
    print(vm.ip)
"""

from __future__ import annotations

from banger._version import __version__ as __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from banger.client import (
        Client as Client,
    )
    from banger.client.transport import (
        MemoryResponse as MemoryResponse,
    )
    from banger.client.transport import (
        MemoryTransport as MemoryTransport,
    )
    from banger.client.transport import (
        Response as Response,
    )
    from banger.client.transport import (
        Transport as Transport,
    )
    from banger.client.transport import (
        UnixSocketTransport as UnixSocketTransport,
    )
    from banger.core.errors import (
        APIError as APIError,
    )
    from banger.core.errors import (
        BadBundle as BadBundle,
    )
    from banger.core.errors import (
        BangerError as BangerError,
    )
    from banger.core.errors import (
        BootFailed as BootFailed,
    )
    from banger.core.errors import (
        ChecksumMismatch as ChecksumMismatch,
    )
    from banger.core.errors import (
        ConfigError as ConfigError,
    )
    from banger.core.errors import (
        Conflict as Conflict,
    )
    from banger.core.errors import (
        DaemonUnavailable as DaemonUnavailable,
    )
    from banger.core.errors import (
        GuestCommandFailed as GuestCommandFailed,
    )
    from banger.core.errors import (
        GuestSetupFailed as GuestSetupFailed,
    )
    from banger.core.errors import (
        HostError as HostError,
    )
    from banger.core.errors import (
        ImageBuildFailed as ImageBuildFailed,
    )
    from banger.core.errors import (
        ImageNotFound as ImageNotFound,
    )
    from banger.core.errors import (
        ImageTooLarge as ImageTooLarge,
    )
    from banger.core.errors import (
        InvalidInput as InvalidInput,
    )
    from banger.core.errors import (
        InvalidName as InvalidName,
    )
    from banger.core.errors import (
        InvalidState as InvalidState,
    )
    from banger.core.errors import (
        KernelNotFound as KernelNotFound,
    )
    from banger.core.errors import (
        KVMUnavailable as KVMUnavailable,
    )
    from banger.core.errors import (
        MissingTool as MissingTool,
    )
    from banger.core.errors import (
        NameTaken as NameTaken,
    )
    from banger.core.errors import (
        NetworkExhausted as NetworkExhausted,
    )
    from banger.core.errors import (
        NotFound as NotFound,
    )
    from banger.core.errors import (
        PermissionDenied as PermissionDenied,
    )
    from banger.core.errors import (
        RegistryError as RegistryError,
    )
    from banger.core.errors import (
        ResourceBusy as ResourceBusy,
    )
    from banger.core.errors import (
        SSHTimeout as SSHTimeout,
    )
    from banger.core.errors import (
        UnsafeLayer as UnsafeLayer,
    )
    from banger.core.errors import (
        Unsupported as Unsupported,
    )
    from banger.core.errors import (
        VMNotFound as VMNotFound,
    )
    from banger.core.models import (
        VM as VM,
    )
    from banger.core.models import (
        Check as Check,
    )
    from banger.core.models import (
        Image as Image,
    )
    from banger.core.models import (
        Kernel as Kernel,
    )
    from banger.core.models import (
        ProgressEvent as ProgressEvent,
    )
    from banger.core.models import (
        VMSpec as VMSpec,
    )
    from banger.core.models import (
        VMState as VMState,
    )
    from banger.core.models import (
        Workspace as Workspace,
    )
    from banger.core.stats import (
        VMStats as VMStats,
    )

# public name -> the module that defines it
_EXPORTS = {
    **dict.fromkeys(
        ("Client",),
        "banger.client",
    ),
    **dict.fromkeys(
        ("MemoryResponse", "MemoryTransport", "Response", "Transport",
         "UnixSocketTransport",),
        "banger.client.transport",
    ),
    **dict.fromkeys(
        ("VM", "Check", "Image", "Kernel", "ProgressEvent", "VMSpec", "VMState",
         "Workspace",),
        "banger.core.models",
    ),
    **dict.fromkeys(
        ("VMStats",),
        "banger.core.stats",
    ),
    **dict.fromkeys(
        ("BangerError", "InvalidInput", "InvalidName", "ConfigError", "NotFound",
         "VMNotFound", "ImageNotFound", "Conflict", "NameTaken", "InvalidState",
         "ResourceBusy", "Unsupported", "NetworkExhausted", "HostError", "MissingTool",
         "KVMUnavailable", "PermissionDenied", "ImageBuildFailed", "RegistryError",
         "UnsafeLayer", "BadBundle", "ImageTooLarge", "ChecksumMismatch", "KernelNotFound",
         "BootFailed", "SSHTimeout", "GuestSetupFailed", "GuestCommandFailed",
         "DaemonUnavailable", "APIError",),
        "banger.core.errors",
    ),
}

__all__ = [
    "VM",
    "APIError",
    "BadBundle",
    "BangerError",
    "BootFailed",
    "Check",
    "ChecksumMismatch",
    "Client",
    "ConfigError",
    "Conflict",
    "DaemonUnavailable",
    "GuestCommandFailed",
    "GuestSetupFailed",
    "HostError",
    "Image",
    "ImageBuildFailed",
    "ImageNotFound",
    "ImageTooLarge",
    "InvalidInput",
    "InvalidName",
    "InvalidState",
    "KVMUnavailable",
    "Kernel",
    "KernelNotFound",
    "MemoryResponse",
    "MemoryTransport",
    "MissingTool",
    "NameTaken",
    "NetworkExhausted",
    "NotFound",
    "PermissionDenied",
    "ProgressEvent",
    "RegistryError",
    "ResourceBusy",
    "Response",
    "SSHTimeout",
    "Transport",
    "UnixSocketTransport",
    "UnsafeLayer",
    "Unsupported",
    "VMNotFound",
    "VMSpec",
    "VMState",
    "VMStats",
    "Workspace",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'banger' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
