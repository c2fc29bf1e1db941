"""The config file schema (`~/.config/banger/config.toml`). Every key is optional; unknown keys
and bad values are one-line errors that name the key."""

from __future__ import annotations

import tomllib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from banger.core.confine import DEFAULT_VMM_UIDS, uid_range
from banger.core.durations import parse_duration
from banger.core.egress import normalize_egress_allow
from banger.core.errors import ConfigError, InvalidInput
from banger.core.filesync import check_host_path, parse_mode, work_disk_path
from banger.core.netplan import bridge_network
from banger.core.units import parse_size


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VMDefaults(_Strict):
    vcpu: int | None = Field(default=None, ge=1, le=64)
    memory_mib: int | None = Field(default=None, ge=128, le=1024 * 1024)
    disk_size: str | None = None
    # Where VMs created without --nat or --egress-allow may send traffic (see vm create).
    egress_allow: list[str] = []

    @field_validator("egress_allow")
    @classmethod
    def _egress(cls, value: list[str]) -> list[str]:
        try:
            return normalize_egress_allow(value)
        except InvalidInput as exc:
            raise ValueError(exc.message) from None

    @field_validator("disk_size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_size(value, what="disk_size")
            except InvalidInput as exc:
                # pydantic only turns ValueError into a validation error naming the key.
                raise ValueError(exc.message) from None
        return value


class FileSync(_Strict):
    """One `[[file_sync]]` entry: copied from the host onto the work disk at create time."""

    host: str
    guest: str
    mode: str | None = None

    @model_validator(mode="after")
    def _check(self) -> FileSync:
        # Checked together so the message can name the entry by its host path.
        try:
            check_host_path(self.host)
            work_disk_path(self.guest)
            if self.mode is not None:
                parse_mode(self.mode)
        except ValueError as exc:
            raise ValueError(f"entry host = {self.host!r}: {exc}") from None
        return self

    @property
    def relative_guest_path(self) -> str:
        return work_disk_path(self.guest)

    @property
    def file_mode(self) -> int | None:
        return parse_mode(self.mode) if self.mode is not None else None


class Config(_Strict):
    log_level: Literal["debug", "info", "warn", "warning", "error"] = "info"
    default_image_name: str = "debian-bookworm"
    ssh_key_path: str | None = None
    backend: Literal["auto", "qemu", "firecracker"] = "auto"
    accel: Literal["auto", "kvm", "tcg"] = "auto"
    qemu_bin: str = "qemu-system-x86_64"
    firecracker_bin: str | None = None
    # Firecracker's jailer (default: next to firecracker_bin, else on PATH): a root daemon
    # starts Firecracker through it when it finds one. Jails are made under the chroot base
    # (default: <state dir>/jailer; it must be on the state dir's filesystem).
    jailer_bin: str | None = None
    firecracker_chroot_base: str | None = None
    # When bangerd runs as root, each VM's VMM drops to a uid of its own from this range
    # (FIRST-LAST) once it opened its files; "" keeps them root.
    vmm_uids: str = DEFAULT_VMM_UIDS
    # A guest's console log is cut back to its newest half once it grows past this.
    console_log_max_size: str = "4M"
    bridge_name: str = Field(default="banger0", pattern=r"^[A-Za-z0-9_.-]{1,15}$")
    bridge_ip: str = "172.16.0.1"
    cidr: str = "172.16.0.0/24"
    default_dns: str | None = None
    debian_mirror: str | None = None
    boot_timeout: float = Field(default=180.0, gt=0)
    stop_timeout: float = Field(default=30.0, gt=0)
    # Start VMs from a warm template of their image when one exists; the first cold boot of
    # an image makes one in the background (QEMU backend only).
    warm_start: bool = True
    # Address-space randomisation in guests. "auto": off under TCG only, where every
    # process's code is translated again at its random addresses (cold boots ~25% slower).
    guest_aslr: Literal["auto", "on", "off"] = "auto"
    vm_defaults: VMDefaults = VMDefaults()
    # None: the host's /etc/resolv.conf nameservers; []: never forward (answer REFUSED).
    dns_upstreams: list[str] | None = None
    stats_poll_interval: str = "10s"
    auto_stop_stale_after: str | None = None
    file_sync: list[FileSync] = []
    # OCI pulls: the most an image may take once extracted (default: half the free space
    # of the state dir, at most 64G); registries spoken to over plain HTTP (loopback ones
    # always are).
    image_max_size: str | None = None
    insecure_registries: list[str] = []
    default_kernel: str = "generic-6.1"

    @field_validator("stats_poll_interval", "auto_stop_stale_after")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_duration(value)
            except InvalidInput as exc:
                raise ValueError(exc.message) from None
        return value

    @field_validator("image_max_size", "console_log_max_size")
    @classmethod
    def _max_size(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_size(value, what="size")
            except InvalidInput as exc:
                raise ValueError(exc.message) from None
        return value

    @field_validator("vmm_uids")
    @classmethod
    def _vmm_uids(cls, value: str) -> str:
        uid_range(value)
        return value

    @field_validator("dns_upstreams")
    @classmethod
    def _upstreams(cls, value: list[str] | None) -> list[str] | None:
        for address in value or []:
            parts = address.split(".")
            if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
                raise ValueError(f"{address!r} is not an IPv4 address")
        return value

    @property
    def stats_poll_seconds(self) -> float:
        return max(1.0, parse_duration(self.stats_poll_interval))

    @property
    def auto_stop_seconds(self) -> float | None:
        if self.auto_stop_stale_after is None:
            return None
        return parse_duration(self.auto_stop_stale_after)

    def check_network(self) -> None:
        bridge_network(self.bridge_ip, self.cidr)

    @property
    def dns_server(self) -> str:
        """What guests use as resolver: the config value, else the bridge address."""
        return self.default_dns or self.bridge_ip


def _format_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "config"
    if first["type"] == "extra_forbidden":
        return f"unknown config key {key!r}"
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"bad value for config key {key!r}: {message}"


def parse_config(text: str, *, source: str = "config.toml") -> Config:
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from exc
    try:
        config = Config.model_validate(data)
        config.check_network()
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_format_error(exc)}") from None
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.message}") from None
    return config
