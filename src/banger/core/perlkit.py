"""The perl banger bundles into an image that has none (an Alpine- or distroless-like OCI
image), so banger-agent runs there too: the host's perl binary, exactly the shared libraries
it and the agent's XS modules need, the dynamic loader, and the agent's module closure,
under PREFIX. The agent's unit starts that perl through the bundled loader with
--library-path, so nothing of the image's own libc is used. Nothing here performs I/O: the
host side (reading the host's perl closure) is host/perlkit.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

PREFIX = "/usr/lib/banger/perl"
PERL_PATH = f"{PREFIX}/bin/perl"
LIBRARY_DIR = f"{PREFIX}/lib"
MODULE_DIR = f"{PREFIX}/perl5"
# Where an image's own perl is; an image that has it keeps using it.
IMAGE_PERL_PATH = "/usr/bin/perl"

# Modules perl loads lazily at run time rather than through the agent's `use` lines:
# Carp for warnings and dies with a backtrace, Errno for `$!` by name.
_LAZY_MODULES = ("Carp", "Errno")
_USE_LINE = re.compile(r"^use\s+([A-Za-z_][\w:]*)", re.MULTILINE)


@dataclass(frozen=True)
class HostPerl:
    """The host's perl closure, as host paths. `modules` pairs each module file (a .pm or
    an XS .so) with its path relative to its @INC directory, e.g. ``auto/POSIX/POSIX.so``."""

    perl: str
    loader: str
    libraries: tuple[str, ...]
    modules: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class PerlKit:
    """The bundled perl, ready to write into an image: in-image path -> content of each
    file, and the agent unit's ExecStart line that runs the agent with it."""

    files: Mapping[str, bytes]
    exec_start: str


def agent_modules(script: str) -> tuple[str, ...]:
    """The modules the agent loads: its `use` lines and the lazily loaded ones, sorted."""
    return tuple(sorted(set(_USE_LINE.findall(script)) | set(_LAZY_MODULES)))


def loader_path(loader: str) -> str:
    """The in-image path of the bundled dynamic loader (its host file name kept)."""
    return f"{PREFIX}/{PurePosixPath(loader).name}"


def kit_files(host_perl: HostPerl) -> dict[str, str]:
    """In-image path -> host path of every file of the bundled perl."""
    files = {PERL_PATH: host_perl.perl, loader_path(host_perl.loader): host_perl.loader}
    for library in host_perl.libraries:
        files[f"{LIBRARY_DIR}/{PurePosixPath(library).name}"] = library
    for host_path, relative in host_perl.modules:
        if relative.startswith("/") or ".." in PurePosixPath(relative).parts:
            raise ValueError(f"module path {relative!r} is not relative to its @INC directory")
        files[f"{MODULE_DIR}/{relative}"] = host_path
    return files


def launcher_argv(loader: str, agent_script: str) -> tuple[str, ...]:
    """The command that runs the agent with the bundled perl, through the bundled loader."""
    return (
        loader_path(loader), "--library-path", LIBRARY_DIR, PERL_PATH, f"-I{MODULE_DIR}",
        agent_script,
    )


def parse_ldd(output: str) -> tuple[str | None, tuple[str, ...]]:
    """(the dynamic loader, the libraries) that `ldd` lists, as absolute host paths; the
    vDSO (no file) is skipped."""
    loader: str | None = None
    libraries: list[str] = []
    for line in output.splitlines():
        words = line.split()
        if "=>" in words:
            target = words[words.index("=>") + 1] if len(words) > words.index("=>") + 1 else ""
            if target.startswith("/"):
                libraries.append(target)
        elif words and words[0].startswith("/"):
            loader = words[0]
    return loader, tuple(dict.fromkeys(libraries))


def xs_objects(module_files: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """(host path, relative path) of the XS object each module may have, e.g. POSIX.pm ->
    auto/POSIX/POSIX.so in the same @INC directory; whether it exists is for the host side."""
    objects = []
    for host_path, relative in module_files:
        if not relative.endswith(".pm"):
            continue
        stem = relative.removesuffix(".pm")
        object_relative = f"auto/{stem}/{PurePosixPath(stem).name}.so"
        inc_dir = host_path.removesuffix(relative)
        objects.append((inc_dir + object_relative, object_relative))
    return tuple(objects)
