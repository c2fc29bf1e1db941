from __future__ import annotations

import pytest

from banger.core import agent, perlkit

LDD = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f9f)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f9e)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f9f)
"""


def test_ldd_output_gives_the_loader_and_the_libraries_but_not_the_vdso() -> None:
    loader, libraries = perlkit.parse_ldd(LDD)
    assert loader == "/lib64/ld-linux-x86-64.so.2"
    assert libraries == ("/lib/x86_64-linux-gnu/libm.so.6", "/lib/x86_64-linux-gnu/libc.so.6")


def test_the_agent_modules_are_its_use_lines_and_the_lazily_loaded_ones() -> None:
    modules = perlkit.agent_modules(agent.AGENT_SCRIPT)
    assert {"strict", "warnings", "Fcntl", "POSIX", "Socket", "Carp", "Errno"} <= set(modules)
    assert list(modules) == sorted(modules)


def test_each_module_may_have_an_xs_object_in_its_own_inc_directory() -> None:
    objects = perlkit.xs_objects([("/usr/lib/perl-base/Tie/Hash.pm", "Tie/Hash.pm")])
    assert objects == (("/usr/lib/perl-base/auto/Tie/Hash/Hash.so", "auto/Tie/Hash/Hash.so"),)


def test_the_kit_lays_out_binary_loader_libraries_and_modules_under_the_prefix() -> None:
    host = perlkit.HostPerl(
        perl="/usr/bin/perl", loader="/lib64/ld-linux-x86-64.so.2",
        libraries=("/lib/x86_64-linux-gnu/libc.so.6",),
        modules=(("/usr/lib/perl-base/POSIX.pm", "POSIX.pm"),
                 ("/usr/lib/perl-base/auto/POSIX/POSIX.so", "auto/POSIX/POSIX.so")),
    )
    assert perlkit.kit_files(host) == {
        "/usr/lib/banger/perl/bin/perl": "/usr/bin/perl",
        "/usr/lib/banger/perl/ld-linux-x86-64.so.2": "/lib64/ld-linux-x86-64.so.2",
        "/usr/lib/banger/perl/lib/libc.so.6": "/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/banger/perl/perl5/POSIX.pm": "/usr/lib/perl-base/POSIX.pm",
        "/usr/lib/banger/perl/perl5/auto/POSIX/POSIX.so":
            "/usr/lib/perl-base/auto/POSIX/POSIX.so",
    }


@pytest.mark.parametrize("relative", ["/etc/passwd", "../../etc/passwd"])
def test_a_module_path_out_of_the_module_directory_is_refused(relative: str) -> None:
    host = perlkit.HostPerl("/usr/bin/perl", "/lib64/ld.so", (), (("/x.pm", relative),))
    with pytest.raises(ValueError, match="not relative"):
        perlkit.kit_files(host)


def test_the_launcher_runs_the_bundled_perl_through_the_bundled_loader() -> None:
    argv = perlkit.launcher_argv("/lib64/ld-linux-x86-64.so.2", agent.AGENT_SCRIPT_PATH)
    assert argv == (
        "/usr/lib/banger/perl/ld-linux-x86-64.so.2", "--library-path", "/usr/lib/banger/perl/lib",
        "/usr/lib/banger/perl/bin/perl", "-I/usr/lib/banger/perl/perl5", agent.AGENT_SCRIPT_PATH,
    )
    unit = agent.agent_unit(" ".join(argv))
    assert f"ExecStart={' '.join(argv)}\n" in unit
