"""The host side of the bundled perl (core/perlkit.py): find the host perl's closure for
banger-agent (its module files from `%INC` after loading the agent's modules, their XS
objects, and the shared libraries `ldd` lists for the binary and each object) and read its
files, for an image without perl. Read once per process: the host's perl does not change
under a running daemon, and a pull must not run perl and ldd each time."""

from __future__ import annotations

import functools
import os
import subprocess
from typing import Protocol

from banger.core import agent, perlkit
from banger.core.errors import ImageBuildFailed

# Prints "<relative>\t<host path>" for each module file the given modules load.
_INC_SCRIPT = (
    'for (@ARGV) { (my $f = "$_.pm") =~ s{::}{/}g; require $f }'
    ' print "$_\\t$INC{$_}\\n" for sort keys %INC'
)
_MAX_FILE = 64 * 1024**2


class PerlKitSource(Protocol):
    def kit(self) -> perlkit.PerlKit: ...


class HostPerlKit:
    """The bundled perl made from the host's own perl (`perl`, its path on the host)."""

    def __init__(self, perl: str = perlkit.IMAGE_PERL_PATH) -> None:
        self._perl = perl

    def kit(self) -> perlkit.PerlKit:
        return _kit(self._perl)


@functools.cache
def _host_perl(perl: str) -> perlkit.HostPerl:
    if not os.path.isfile(perl):
        raise ImageBuildFailed(
            "the image has no perl for banger-agent, and neither has this host",
            hint="install perl-base on the host to bundle its perl into such images",
        )
    modules = agent_module_files(perl)
    objects = tuple(
        (host, relative) for host, relative in perlkit.xs_objects(modules)
        if os.path.isfile(host)
    )
    loader: str | None = None
    libraries: dict[str, None] = {}
    for binary in (perl, *(host for host, _ in objects)):
        found_loader, found = perlkit.parse_ldd(_run(["ldd", binary]))
        loader = loader or found_loader
        libraries.update(dict.fromkeys(found))
    if loader is None:
        raise ImageBuildFailed(f"ldd names no dynamic loader for {perl}")
    return perlkit.HostPerl(perl, loader, tuple(libraries), modules + objects)


def agent_module_files(perl: str) -> tuple[tuple[str, str], ...]:
    """(host path, path relative to its @INC directory) of each module file the agent loads."""
    modules = perlkit.agent_modules(agent.AGENT_SCRIPT)
    pairs = []
    for line in _run([perl, "-e", _INC_SCRIPT, *modules]).splitlines():
        relative, _, host_path = line.partition("\t")
        pairs.append((host_path, relative))
    return tuple(pairs)


@functools.cache
def _kit(perl: str) -> perlkit.PerlKit:
    host_perl = _host_perl(perl)
    contents = {}
    for guest_path, host_path in perlkit.kit_files(host_perl).items():
        with open(host_path, "rb") as stream:
            contents[guest_path] = stream.read(_MAX_FILE)
    exec_start = " ".join(perlkit.launcher_argv(host_perl.loader, agent.AGENT_SCRIPT_PATH))
    return perlkit.PerlKit(contents, exec_start)


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ImageBuildFailed(
            f"reading the host's perl for banger-agent failed: {' '.join(argv[:2])}: {exc}"
        ) from exc
    return done.stdout
