from __future__ import annotations

import pytest

from banger.core import errors
from banger.core.errors import APIError, BangerError, error_from_dict

ALL = errors._all_subclasses(BangerError)
# APIError stands for codes this client does not know; it has no code of its own.
TYPED = [cls for cls in ALL if cls is not APIError]


def test_codes_are_unique() -> None:
    codes = [BangerError.code, *(cls.code for cls in TYPED)]
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize("cls", TYPED, ids=lambda cls: cls.code)
def test_round_trip_keeps_the_class(cls: type[BangerError]) -> None:
    original = cls("something went wrong", hint="try this")
    wire = original.to_dict()
    assert wire == {"code": cls.code, "message": "something went wrong", "hint": "try this"}
    back = error_from_dict(wire)
    assert type(back) is cls
    assert back.code == cls.code
    assert back.message == "something went wrong"
    assert back.hint == "try this"


@pytest.mark.parametrize("cls", TYPED, ids=lambda cls: cls.code)
def test_default_hint_survives_the_round_trip(cls: type[BangerError]) -> None:
    back = error_from_dict(cls("m").to_dict())
    assert back.hint == cls.default_hint


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.__name__)
def test_http_status_is_an_error_status(cls: type[BangerError]) -> None:
    assert 400 <= cls.http_status < 600


def test_status_follows_the_family() -> None:
    assert errors.VMNotFound.http_status == 404
    assert errors.NameTaken.http_status == 409
    assert errors.InvalidName.http_status == 400
    assert errors.SSHTimeout.http_status == 500


def test_internal_and_unknown_codes_come_back_as_api_errors() -> None:
    internal = error_from_dict(BangerError("boom", hint="see log").to_dict())
    assert isinstance(internal, APIError)
    assert (internal.message, internal.hint) == ("boom", "see log")
    unknown = error_from_dict({"code": "from_the_future", "message": "new"})
    assert isinstance(unknown, APIError)
    assert unknown.message == "new"
    assert unknown.hint == ""


def test_malformed_wire_errors_still_rebuild() -> None:
    back = error_from_dict({})
    assert isinstance(back, BangerError)
    assert back.message == "unknown error"
    assert error_from_dict({"code": "vm_not_found", "message": "x", "hint": None}).hint == ""


def test_ssh_timeout_is_a_boot_failure() -> None:
    assert issubclass(errors.SSHTimeout, errors.BootFailed)
    assert issubclass(errors.InvalidName, errors.InvalidInput)
    assert issubclass(errors.ConfigError, errors.InvalidInput)
