"""`import banger` is the SDK's front door: every public name resolves, lazily."""

from __future__ import annotations

import subprocess
import sys

import banger
from banger.client import Client
from banger.core.errors import BangerError, VMNotFound
from banger.core.models import VM


def test_public_names_resolve_to_their_definitions() -> None:
    assert (banger.Client, banger.VM, banger.VMNotFound) == (Client, VM, VMNotFound)
    for name in banger.__all__:
        assert getattr(banger, name) is not None
    errors = [getattr(banger, name) for name in banger.__all__ if name.endswith("Error")]
    assert all(issubclass(e, BangerError) for e in errors)
    assert "list_vms_raw" not in dir(banger.Client)
    exported = [name for names in banger._EXPORTS.values() for name in names]
    assert sorted(exported) == sorted(banger.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        banger.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("banger.NoSuchThing resolved")


def test_import_banger_loads_nothing_else() -> None:
    code = "import banger, sys; print(sorted(m for m in sys.modules if m.startswith('banger')))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    assert out.strip() == "['banger', 'banger._version']"
