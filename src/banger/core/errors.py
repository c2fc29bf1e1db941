"""The one exception tree. Every error a user can see has a stable ``code`` and a ``hint``.

The API serialises these as ``{"error": {"code", "message", "hint"}}`` and the client
re-raises the same class on the other side, so the CLI renders daemon and local errors alike.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: see banger.core.xdg
if TYPE_CHECKING:
    from typing import Any, ClassVar


class BangerError(Exception):
    code: ClassVar[str] = "internal"
    default_hint: ClassVar[str] = "run again with --debug; the daemon log is bangerd.log"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = self.default_hint if hint is None else hint

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "hint": self.hint}


class InvalidInput(BangerError):
    code = "invalid_input"
    default_hint = "see the command's --help"
    http_status = 400


class InvalidName(InvalidInput):
    code = "invalid_name"
    default_hint = "names are DNS labels: 1-63 of a-z, 0-9 and '-', not starting or ending with '-'"


class ConfigError(InvalidInput):
    code = "config_invalid"
    default_hint = "fix ~/.config/banger/config.toml (see README, Config)"


class NotFound(BangerError):
    code = "not_found"
    http_status = 404


class VMNotFound(NotFound):
    code = "vm_not_found"
    default_hint = "see `banger vm list` for existing VMs"


class ImageNotFound(NotFound):
    code = "image_missing"
    default_hint = "see `banger image list`; `banger image pull debian-bookworm` builds the default"


class Conflict(BangerError):
    code = "conflict"
    http_status = 409


class NameTaken(Conflict):
    code = "name_taken"
    default_hint = "pick another --name or delete the existing VM"


class InvalidState(Conflict):
    code = "invalid_state"
    default_hint = "see `banger vm list` for each VM's state"


class ResourceBusy(Conflict):
    code = "busy"
    default_hint = "try again when the other operation has finished"


class Unsupported(Conflict):
    """The VM's backend cannot do what was asked (e.g. snapshots on QEMU)."""

    code = "unsupported"
    default_hint = "create the VM with a backend that supports it: --backend firecracker"


class NetworkExhausted(Conflict):
    code = "network_exhausted"
    default_hint = "delete unused VMs or widen `cidr` in config"


class HostError(BangerError):
    """A host tool or system call failed."""

    code = "host_error"
    default_hint = "run `banger doctor`; details are in ~/.local/state/banger/bangerd.log"


class MissingTool(HostError):
    code = "missing_tool"
    default_hint = "run `banger doctor` to see what is missing and how to install it"


class KVMUnavailable(HostError):
    code = "kvm_unavailable"
    default_hint = "set accel = \"tcg\" in config, or run `banger doctor`"


class PermissionDenied(HostError):
    code = "permission_denied"
    default_hint = "run as root, or allow passwordless sudo for ip/nft"


class Forbidden(BangerError):
    """The API refused the caller: bangerd serves only its own user (and root)."""

    code = "forbidden"
    http_status = 403
    default_hint = "each user runs their own bangerd; use your own socket ($XDG_RUNTIME_DIR)"


class DiskFull(HostError):
    code = "disk_full"
    http_status = 507
    default_hint = "free space on the host (`df -h`), or ask for less"


class ImageBuildFailed(HostError):
    code = "image_build_failed"


class RegistryError(HostError):
    """An OCI registry refused, failed or answered something we cannot use."""

    code = "registry_error"
    default_hint = "check the image reference, the registry's address and your credentials"


class UnsafeLayer(InvalidInput):
    """An image layer tries to write outside its root or is otherwise not extractable."""

    code = "unsafe_layer"
    default_hint = "the image is malformed or malicious; it was not imported"


class BadBundle(InvalidInput):
    """An image bundle (`image import`) is corrupt, truncated or not a banger bundle."""

    code = "bad_bundle"
    default_hint = "nothing was imported; export the image again or copy the file again"


class ImageTooLarge(InvalidInput):
    code = "image_too_large"
    default_hint = "raise `image_max_size` in config (or free disk space) if the image is trusted"


class ChecksumMismatch(HostError):
    code = "checksum_mismatch"
    default_hint = "the download or the file is corrupt; run the command again"


class KernelNotFound(NotFound):
    code = "kernel_missing"
    default_hint = "see `banger kernel list`; `banger kernel pull NAME` fetches a catalog kernel"


class BootFailed(HostError):
    code = "boot_failed"
    default_hint = "see `banger vm logs NAME` for the guest console"


class SSHTimeout(BootFailed):
    code = "ssh_timeout"


class GuestSetupFailed(BootFailed):
    """The guest booted but could not finish banger's first-boot setup (e.g. installing
    openssh-server); the guest's own message says why."""

    code = "guest_setup_failed"


class GuestCommandFailed(HostError):
    code = "guest_command_failed"


class GuestAgentFailed(HostError):
    """The guest agent's channel (exec, files) failed: no answer, garbage, or it went away."""

    code = "agent_failed"
    default_hint = (
        "see `banger vm logs NAME`; images built before the agent served exec need "
        "`banger image pull` again"
    )


class GuestAgentUnavailable(GuestAgentFailed):
    """No agent answered the channel (none in the image, or not up yet): nothing was run,
    so a caller may take another way in (ssh)."""

    code = "agent_unavailable"


class GuestAgentStopped(GuestAgentUnavailable):
    """The agent said it stopped (its unit failed, e.g. no perl in the image): it will not
    answer until the guest starts again."""

    code = "agent_stopped"


class GuestPathNotFound(NotFound):
    code = "guest_path_missing"
    default_hint = "check the path in the guest, e.g. `banger vm exec NAME -- ls -l DIR`"


class ProcessNotFound(NotFound):
    code = "process_not_found"
    default_hint = "see the VM's processes: GET /v1/vms/NAME/processes (ended ones go after 60s)"


class GuestFileFailed(InvalidInput):
    """A guest file could not be read or written (a directory, no permission, disk full)."""

    code = "guest_file_failed"
    default_hint = "check the path in the guest, e.g. `banger vm exec NAME -- ls -l DIR`"


class SandboxNotFound(NotFound):
    """No E2B sandbox (banger e2b) by that ID: never made, killed, or past its timeout."""

    code = "sandbox_not_found"


class UnsafeGuestTar(InvalidInput):
    """A directory copied out of a guest came as a tar that would write outside its
    destination (or is malformed): the guest is not trusted with the host's files."""

    code = "unsafe_guest_tar"
    default_hint = "nothing outside the destination was written; check the guest's directory"


class DaemonUnavailable(BangerError):
    code = "daemon_unavailable"
    default_hint = "see ~/.local/state/banger/bangerd.log, or run `banger daemon status`"


class APIError(BangerError):
    """An error from the daemon whose code this client does not know."""


def _all_subclasses(cls: type[BangerError]) -> list[type[BangerError]]:
    found: list[type[BangerError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


def error_from_dict(data: dict[str, Any]) -> BangerError:
    """Rebuild the typed error the daemon raised from its wire form."""
    code = str(data.get("code", "internal"))
    classes: list[type[BangerError]] = [BangerError, *_all_subclasses(BangerError)]
    by_code = {sub.code: sub for sub in classes}
    error_class = by_code.get(code, APIError)
    return error_class(str(data.get("message", "unknown error")), hint=str(data.get("hint") or ""))
