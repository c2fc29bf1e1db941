"""banger: one-command development sandboxes on microVMs.

`import banger` is the Python SDK: `banger.Sandbox` (and `banger.AsyncSandbox`) runs
commands and moves files in a VM (docs/sdk.md), `banger.Client` is the whole API of bangerd,
its answers are the models here (`banger.VM`, `banger.Image`, ...), and its errors are the
`banger.BangerError` tree, each with a stable `code` and a `hint`. The names load on first
use (module `__getattr__`): this package is imported by every `banger` call, and the
models would cost that call milliseconds it does not need.

    import banger

    with banger.Sandbox.create() as sb:  # a running VM, deleted at the block's end
        print(sb.exec("uname -r").stdout)
"""

from __future__ import annotations

from banger._version import __version__ as __version__

TYPE_CHECKING = False
if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ loads each on first use
    from banger.client import Client
    from banger.client.transport import (
        MemoryResponse,
        MemoryTransport,
        Response,
        Transport,
        UnixSocketTransport,
    )
    from banger.core.errors import (
        APIError,
        BadBundle,
        BangerError,
        BootFailed,
        ChecksumMismatch,
        ConfigError,
        Conflict,
        DaemonUnavailable,
        GuestAgentFailed,
        GuestCommandFailed,
        GuestFileFailed,
        GuestPathNotFound,
        GuestSetupFailed,
        HostError,
        ImageBuildFailed,
        ImageNotFound,
        ImageTooLarge,
        InvalidInput,
        InvalidName,
        InvalidState,
        KernelNotFound,
        KVMUnavailable,
        MissingTool,
        NameTaken,
        NetworkExhausted,
        NotFound,
        PermissionDenied,
        ProcessNotFound,
        RegistryError,
        ResourceBusy,
        SSHTimeout,
        UnsafeLayer,
        Unsupported,
        VMNotFound,
    )
    from banger.core.guestapi import FileEntry, ProcessInfo
    from banger.core.models import (
        VM,
        Check,
        Image,
        Kernel,
        ProgressEvent,
        VMSpec,
        VMState,
        Workspace,
    )
    from banger.core.stats import VMStats
    from banger.sdk.aio import AsyncFiles, AsyncProcess, AsyncSandbox
    from banger.sdk.files import Files
    from banger.sdk.process import Process
    from banger.sdk.results import ExecResult
    from banger.sdk.sandbox import Sandbox

# the module that defines each public name
_EXPORTS = {
    "banger.client": (
        "Client",
    ),
    "banger.client.transport": (
        "MemoryResponse", "MemoryTransport", "Response", "Transport",
        "UnixSocketTransport",
    ),
    "banger.core.guestapi": (
        "FileEntry", "ProcessInfo",
    ),
    "banger.core.errors": (
        "APIError", "BadBundle", "BangerError", "BootFailed", "ChecksumMismatch",
        "ConfigError", "Conflict", "DaemonUnavailable", "GuestAgentFailed",
        "GuestCommandFailed", "GuestFileFailed", "GuestPathNotFound", "GuestSetupFailed",
        "HostError", "ImageBuildFailed", "ImageNotFound", "ImageTooLarge", "InvalidInput",
        "InvalidName", "InvalidState", "KernelNotFound", "KVMUnavailable", "MissingTool",
        "NameTaken", "NetworkExhausted", "NotFound", "PermissionDenied", "ProcessNotFound",
        "RegistryError", "ResourceBusy", "SSHTimeout", "UnsafeLayer", "Unsupported",
        "VMNotFound",
    ),
    "banger.core.models": (
        "VM", "Check", "Image", "Kernel", "ProgressEvent", "VMSpec", "VMState",
        "Workspace",
    ),
    "banger.core.stats": (
        "VMStats",
    ),
    "banger.sdk.aio": (
        "AsyncFiles", "AsyncProcess", "AsyncSandbox",
    ),
    "banger.sdk.files": (
        "Files",
    ),
    "banger.sdk.process": (
        "Process",
    ),
    "banger.sdk.results": (
        "ExecResult",
    ),
    "banger.sdk.sandbox": (
        "Sandbox",
    ),
}

__all__ = [
    "VM",
    "APIError",
    "AsyncFiles",
    "AsyncProcess",
    "AsyncSandbox",
    "BadBundle",
    "BangerError",
    "BootFailed",
    "Check",
    "ChecksumMismatch",
    "Client",
    "ConfigError",
    "Conflict",
    "DaemonUnavailable",
    "ExecResult",
    "FileEntry",
    "Files",
    "GuestAgentFailed",
    "GuestCommandFailed",
    "GuestFileFailed",
    "GuestPathNotFound",
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
    "Process",
    "ProcessInfo",
    "ProcessNotFound",
    "ProgressEvent",
    "RegistryError",
    "ResourceBusy",
    "Response",
    "SSHTimeout",
    "Sandbox",
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
    module = next((m for m, names in _EXPORTS.items() if name in names), None)
    if module is None:
        raise AttributeError(f"module 'banger' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
