"""The lock files match pyproject.toml: every dependency it names is pinned, with hashes, at a
version its range allows, and the test lock pins the runtime closure at the same versions
(what CI tests is what install.sh installs)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^ \\]+)")


def _pins(lock: str) -> dict[str, str]:
    text = (ROOT / "requirements" / lock).read_text()
    pins = {
        canonicalize_name(m.group(1)): m.group(2)
        for m in map(PIN.match, text.splitlines()) if m
    }
    # Every pinned requirement carries at least one hash (pip --require-hashes needs them).
    blocks = [b for b in re.split(r"\n(?=\S)", text) if PIN.match(b)]
    assert all("--hash=sha256:" in block for block in blocks)
    return pins


def _declared(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = project["dependencies"] + (project["optional-dependencies"][extra] if extra else [])
    return [Requirement(spec) for spec in names]


def test_runtime_lock_pins_every_dependency_in_range() -> None:
    pins = _pins("runtime.txt")
    for requirement in _declared():
        version = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version), (requirement, version)
    assert "setuptools" in pins  # banger itself is built without build isolation


def test_test_lock_pins_the_test_tools_and_the_runtime_closure_alike() -> None:
    runtime, test = _pins("runtime.txt"), _pins("test.txt")
    for requirement in _declared("test"):
        assert requirement.specifier.contains(test[canonicalize_name(requirement.name)])
    assert {name: test.get(name) for name in runtime} == runtime
