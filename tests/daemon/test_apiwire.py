"""Request bodies checked against the wire schema: one InvalidInput naming the bad field."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from banger.core import api
from banger.core.errors import DiskFull, InvalidInput
from banger.daemon.apiwire import parse, unexpected


@pytest.mark.parametrize(
    ("schema", "data", "message"),
    [
        (api.CreateVM, {"vcpu": "two"}, "vcpu must be an integer"),
        (api.CreateVM, {"vcpu": 2.0}, "vcpu must be an integer"),
        (api.CreateVM, {"vcpu": True}, "vcpu must be an integer"),
        (api.CreateVM, {"name": 3}, "name must be a string"),
        (api.CreateVM, {"ready": "soon"}, "ready must be 'login', 'sshd' or 'agent'"),
        # The string "false" is not false (it used to read as true).
        (api.PullImage, {"name": "a", "force": "false"}, "force must be true or false"),
        (api.PullImage, {}, "name is required"),
        (api.PullImage, {"name": None}, "name is required"),
        (api.PullImage, {"name": ""}, "name is required"),
        (api.RegisterKernel, {"name": "k"}, "vmlinuz is required"),
        (api.CreateVM, ["a", "list"], "must be a JSON object"),
    ],
)
def test_a_bad_field_is_one_error_naming_it(
    schema: type[api.Request], data: Any, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse(schema, data)


def test_defaults_fill_in_and_unknown_keys_are_ignored() -> None:
    created = parse(api.CreateVM, {"name": "dev", "ready": "sshd", "from_the_future": 1})
    assert created == api.CreateVM(name="dev", ready="sshd")
    assert not created.waits_for_login
    assert parse(api.StartVM, {}) == api.StartVM()
    assert parse(api.PullImage, api.PullImage(name="a", force=True).body()).force


def test_a_full_disk_is_named_as_such_not_an_internal_error() -> None:
    error = unexpected(OSError(errno.ENOSPC, "No space left on device", "/s/vms/x/work.ext4"),
                       "POST /v1/vms")
    assert isinstance(error, DiskFull)
    assert error.code == "disk_full"
    assert "/s/vms/x/work.ext4" in error.message
    other = unexpected(ValueError("bug"), "POST /v1/vms")
    assert other.code == "internal" and "bug" in other.message
