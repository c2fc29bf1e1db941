"""The API's wire schema: one pydantic model per request body, shared by the client (which
builds bodies with them) and the daemon (which validates what arrives with them).

It lives in `core` rather than in a package of its own: it is pure data and validation, the
same kind of thing as the config schema in `core/config.py`, and `core` is the one layer
both `client` and `daemon` may import. A top-level `banger.schema` would need its own slot
in the layers contract, between `host` and `core`, and would buy nothing over this module.

Responses are the `core.models` dataclasses in their `to_dict` form (VM, Image, Kernel,
Workspace, Check; NDJSON streams carry ProgressEvent), plus the small answers modelled here.

Validation is strict (no "2" for 2, no "false" for false) and unknown keys are ignored, so
an older client keeps working with a newer daemon. The first bad field becomes one
`InvalidInput` naming it, on either side. Importing this module imports pydantic: the CLI
only does so on commands that send a body, never on `banger --help` or `vm list`."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from banger.core.errors import InvalidInput

# A required string field: missing, null and "" all read "<field> is required".
Required = Annotated[str, Field(min_length=1)]
# What `vm create` waits for: a verified login, or only the guest's sshd answering.
Readiness = Literal["login", "sshd"]


class Request(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    def __init__(self, **fields: Any) -> None:
        """Built by the client: a bad field is the same InvalidInput the daemon answers."""
        try:
            super().__init__(**fields)
        except ValidationError as exc:
            raise _invalid(exc) from None

    def body(self) -> dict[str, Any]:
        """The JSON object the client sends."""
        return self.model_dump(mode="json")


class CreateVM(Request):
    name: str | None = None
    image: str | None = None
    vcpu: int | None = None
    memory_mib: int | None = None
    disk_size: str | None = None
    start: bool = True
    ready: Readiness = "login"
    nat: bool = False
    backend: str | None = None
    kernel: str | None = None
    cold: bool = False

    @property
    def waits_for_login(self) -> bool:
        return self.ready == "login"


class StartVM(Request):
    from_snapshot: bool = False


class KillVM(Request):
    signal: str = "KILL"


class SetVM(Request):
    vcpu: int | None = None
    memory_mib: int | None = None
    disk_size: str | None = None
    nat: bool | None = None


class RecordWorkspace(Request):
    guest_path: Required
    base_commit: str = ""
    source: str = ""
    branch: str = ""
    readonly: bool = False


class PullImage(Request):
    name: Required
    force: bool = False
    as_name: str | None = None
    kernel: str | None = None


class RegisterImage(Request):
    name: Required
    rootfs: Required
    kernel: Required
    initrd: str | None = None


class WarmImage(Request):
    force: bool = False
    backend: str | None = None


class ExportImage(Request):
    path: Required


class ImportImage(Request):
    path: Required
    as_name: str | None = None


class PullKernel(Request):
    name: Required
    force: bool = False


class RegisterKernel(Request):
    name: Required
    vmlinuz: Required
    initrd: str | None = None
    vmlinux: str | None = None
    modules: str | None = None


class Status(BaseModel):
    """`GET /v1/status`."""

    pid: int
    version: str
    socket: str
    log: str
    state_dir: str
    backend: str
    accel: str
    vms: int


class ConsoleLog(BaseModel):
    """`GET /v1/vms/{name}/logs`: base64 of the console bytes from the asked offset, and the
    offset to ask for next."""

    data: str
    offset: int


R = TypeVar("R", bound=Request)

_KIND = {
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "missing": "is required",
    "string_too_short": "is required",
}


def parse(model: type[R], data: Any) -> R:
    """`data` (a decoded JSON body) as `model`, or InvalidInput naming the first bad field."""
    if not isinstance(data, dict):
        raise InvalidInput("request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _invalid(exc: ValidationError) -> InvalidInput:
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"])
    if error["type"] == "literal_error":
        return InvalidInput(f"{field} must be {error['ctx']['expected']}")
    # A null where a required string goes fails as string_type; it is still "required".
    if error["type"] == "string_type" and error["input"] is None:
        return InvalidInput(f"{field} is required")
    kind = _KIND.get(error["type"], error["msg"].lower())
    return InvalidInput(f"{field} {kind}")
