from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from banger.core import perlkit
from banger.host.perlkit import HostPerlKit

pytestmark = pytest.mark.skipif(not os.path.isfile("/usr/bin/perl"), reason="no host perl")


def test_the_host_kit_holds_perl_its_loader_libc_and_the_agent_modules() -> None:
    kit = HostPerlKit().kit()
    assert perlkit.PERL_PATH in kit.files
    assert f"{perlkit.LIBRARY_DIR}/libc.so.6" in kit.files
    assert f"{perlkit.MODULE_DIR}/POSIX.pm" in kit.files
    assert f"{perlkit.MODULE_DIR}/auto/POSIX/POSIX.so" in kit.files
    # Only the closure: a few megabytes, not the host's whole perl.
    assert sum(len(content) for content in kit.files.values()) < 32 * 1024**2


def test_the_host_kit_runs_the_agent_modules_from_its_own_files(tmp_path: Path) -> None:
    kit = HostPerlKit().kit()
    for path, content in kit.files.items():
        target = tmp_path / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(0o755)
    launcher = kit.exec_start.split()[:-1]  # without the agent script
    rebased = [str(tmp_path) + word if word.startswith("/") else word for word in launcher]
    rebased[-1] = f"-I{tmp_path}{perlkit.MODULE_DIR}"
    code = 'use POSIX (); use Socket (); use Fcntl (); print "$INC{q(POSIX.pm)}\\n"'
    done = subprocess.run([*rebased, "-e", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"{tmp_path}{perlkit.MODULE_DIR}/POSIX.pm"
