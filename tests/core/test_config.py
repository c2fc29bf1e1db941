from __future__ import annotations

import pytest

from banger.core.config import Config, VMDefaults, parse_config
from banger.core.errors import ConfigError

FULL = """\
log_level = "debug"
default_image_name = "my-image"
ssh_key_path = "~/.ssh/id_ed25519"
backend = "qemu"
accel = "tcg"
qemu_bin = "/opt/qemu/bin/qemu-system-x86_64"
firecracker_bin = "/usr/bin/firecracker"
bridge_name = "br-test"
bridge_ip = "10.9.0.1"
cidr = "10.9.0.0/16"
default_dns = "9.9.9.9"
debian_mirror = "http://deb.example.test/debian"
boot_timeout = 60
stop_timeout = 5.5

[vm_defaults]
vcpu = 4
memory_mib = 2048
disk_size = "20G"
"""


def _error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="/home/u/.config/banger/config.toml")
    error = info.value
    assert error.code == "config_invalid"
    assert "\n" not in str(error)
    assert str(error).startswith("/home/u/.config/banger/config.toml: ")
    return error


def test_empty_file_gives_the_defaults() -> None:
    config = parse_config("")
    assert config == Config()
    assert config.vm_defaults == VMDefaults()
    assert config.dns_server == config.bridge_ip


def test_every_key_can_be_set() -> None:
    config = parse_config(FULL)
    assert config.log_level == "debug"
    assert config.accel == "tcg"
    assert config.cidr == "10.9.0.0/16"
    assert config.stop_timeout == 5.5
    assert config.vm_defaults == VMDefaults(vcpu=4, memory_mib=2048, disk_size="20G")
    assert config.dns_server == "9.9.9.9"


# bridge_ip and cidr must agree, so on their own they are set to values that fit the default.
SINGLE_LINES = [
    line for line in FULL.splitlines()
    if " = " in line and not line.startswith(("bridge_ip", "cidr"))
] + ['bridge_ip = "172.16.0.254"', 'cidr = "172.16.0.0/16"']


@pytest.mark.parametrize("line", SINGLE_LINES)
def test_each_key_is_optional_on_its_own(line: str) -> None:
    section = "[vm_defaults]\n" if line.split(" = ")[0] in VMDefaults.model_fields else ""
    parse_config(section + line + "\n")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("colour = 'blue'\n", "colour"),
        ("[vm_defaults]\ncpus = 2\n", "vm_defaults.cpus"),
        ("[network]\nmtu = 1400\n", "network"),
    ],
)
def test_unknown_key_is_named_in_one_line(text: str, key: str) -> None:
    error = _error(text)
    assert f"unknown config key {key!r}" in error.message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("accel = 'fast'\n", "accel"),
        ("backend = 'vmware'\n", "backend"),
        ("log_level = 3\n", "log_level"),
        ("boot_timeout = 0\n", "boot_timeout"),
        ("stop_timeout = 'soon'\n", "stop_timeout"),
        ("bridge_name = 'a-name-longer-than-15'\n", "bridge_name"),
        ("bridge_name = 'br 0'\n", "bridge_name"),
        ("vm_defaults = 5\n", "vm_defaults"),
        ("[vm_defaults]\nvcpu = 0\n", "vm_defaults.vcpu"),
        ("[vm_defaults]\nvcpu = 65\n", "vm_defaults.vcpu"),
        ("[vm_defaults]\nmemory_mib = 64\n", "vm_defaults.memory_mib"),
        ("[vm_defaults]\ndisk_size = 'lots'\n", "vm_defaults.disk_size"),
        ("[vm_defaults]\ndisk_size = '0G'\n", "vm_defaults.disk_size"),
        ("vmm_uids = '0-65535'\n", "vmm_uids"),
        ("vmm_uids = '1900000000'\n", "vmm_uids"),
        ("vmm_uids = '3000-2000'\n", "vmm_uids"),
        ("console_log_max_size = 'big'\n", "console_log_max_size"),
    ],
)
def test_bad_value_names_the_key(text: str, key: str) -> None:
    error = _error(text)
    assert f"bad value for config key {key!r}" in error.message


@pytest.mark.parametrize("text", ["accel = \n", "[vm_defaults\n", "a = 1\na = 2\n", "x = 'open\n"])
def test_bad_toml_is_one_line(text: str) -> None:
    error = _error(text)
    assert "invalid TOML" in error.message
    assert error.hint


def test_bridge_ip_outside_cidr() -> None:
    error = _error("bridge_ip = '10.0.0.1'\ncidr = '172.16.0.0/24'\n")
    assert "10.0.0.1" in error.message
    assert "172.16.0.0/24" in error.message


def test_unusable_cidr() -> None:
    assert "too small" in _error("bridge_ip = '10.0.0.1'\ncidr = '10.0.0.0/31'\n").message
    assert "invalid" in _error("cidr = 'ten-slash-eight'\n").message


def test_config_is_immutable() -> None:
    config = parse_config("")
    with pytest.raises(ValueError):
        config.accel = "kvm"
