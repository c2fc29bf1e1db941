"""The config file schema (`~/.config/banger/config.toml`). Every key is optional; unknown keys
and bad values are one-line errors that name the key."""

from __future__ import annotations

import tomllib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from banger.core.errors import ConfigError, InvalidInput
from banger.core.netplan import bridge_network
from banger.core.units import parse_size


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VMDefaults(_Strict):
    vcpu: int | None = Field(default=None, ge=1, le=64)
    memory_mib: int | None = Field(default=None, ge=128, le=1024 * 1024)
    disk_size: str | None = None

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


class Config(_Strict):
    log_level: Literal["debug", "info", "warn", "warning", "error"] = "info"
    default_image_name: str = "debian-bookworm"
    ssh_key_path: str | None = None
    backend: Literal["auto", "qemu", "firecracker"] = "auto"
    accel: Literal["auto", "kvm", "tcg"] = "auto"
    qemu_bin: str = "qemu-system-x86_64"
    firecracker_bin: str | None = None
    bridge_name: str = Field(default="banger0", pattern=r"^[A-Za-z0-9_.-]{1,15}$")
    bridge_ip: str = "172.16.0.1"
    cidr: str = "172.16.0.0/24"
    default_dns: str | None = None
    debian_mirror: str | None = None
    boot_timeout: float = Field(default=180.0, gt=0)
    stop_timeout: float = Field(default=30.0, gt=0)
    vm_defaults: VMDefaults = VMDefaults()

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
    return f"bad value for config key {key!r}: {first['msg']}"


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
