"""Shell completion in real shells: each script loads the way `banger completion --help` says,
and completing a VM name in bash, zsh and fish offers the live VM from the daemon."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import BangerEnv

NAME = "tabvm"


def _require(*shells: str) -> None:
    missing = [s for s in shells if shutil.which(s) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install zsh fish bash-completion)")


@pytest.fixture(scope="module")
def env(banger: BangerEnv) -> Iterator[dict[str, str]]:
    """The installation's environment with `banger` on PATH (as the shells call it) and one
    VM to complete. It need not run: completion only asks the daemon for names."""
    bindir = Path(tempfile.mkdtemp(prefix="bgc-", dir="/tmp"))
    wrapper = bindir / "banger"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m banger.cli "$@"\n')
    wrapper.chmod(0o755)
    banger.run("vm", "create", "--name", NAME, "--no-start")
    try:
        yield {**banger.env, "PATH": f"{bindir}:{banger.env.get('PATH', '')}"}
    finally:
        banger.run("vm", "delete", NAME, check=False)
        shutil.rmtree(bindir, ignore_errors=True)


def shell(banger: BangerEnv, env: dict[str, str], argv: list[str]) -> str:
    proc = subprocess.run(
        banger.netns.exec_argv(argv), env=env, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL, check=False,
    )
    assert proc.returncode == 0, f"{argv[0]} exited {proc.returncode}: {proc.stderr}"
    return proc.stdout


BASH_REQUEST = """
COMP_WORDS=(banger vm ssh "") COMP_CWORD=3
_banger_completion banger
printf 'reply=%s\\n' "${COMPREPLY[@]}"
"""


def test_bash_sourced_and_from_the_bash_completion_directory(
    banger: BangerEnv, env: dict[str, str]
) -> None:
    _require("bash")
    out = shell(banger, env, ["bash", "--norc", "--noprofile", "-c",
                              "source <(banger completion bash)\ncomplete -p banger\n"
                              + BASH_REQUEST])
    assert "complete -o nosort -F _banger_completion banger" in out
    assert f"reply={NAME}" in out.splitlines()

    # The per-user directory bash-completion loads from on first Tab.
    if not Path("/usr/share/bash-completion/bash_completion").exists():
        pytest.skip("needs bash-completion (apt-get install bash-completion)")
    target = Path(env["HOME"]) / ".local/share/bash-completion/completions/banger"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(shell(banger, env, ["banger", "completion", "bash"]))
    try:
        out = shell(banger, env, ["bash", "--norc", "--noprofile", "-c",
                                  "source /usr/share/bash-completion/bash_completion\n"
                                  "__load_completion banger && complete -p banger\n"
                                  + BASH_REQUEST])
    finally:
        target.unlink()
    assert "_banger_completion banger" in out
    assert f"reply={NAME}" in out.splitlines()


# Outside a completion widget zsh's compadd/_describe cannot run: these stand-ins print
# the candidates the script hands them (by array name, `-a NAME` / `_describe ... NAME`).
ZSH_STUBS = """
compadd() { local array=${@[-1]}; print -rl -- "cand=${(P)^array}" }
_describe() { local array=$4; print -rl -- "cand=${(P)^array}" }
words=(banger vm ssh "") CURRENT=4
"""


def test_zsh_sourced_and_autoloaded_from_fpath(banger: BangerEnv, env: dict[str, str]) -> None:
    _require("zsh")
    zfunc = Path(env["HOME"]) / ".zfunc"
    zfunc.mkdir(exist_ok=True)
    (zfunc / "_banger").write_text(shell(banger, env, ["banger", "completion", "zsh"]))
    dump = Path(env["HOME"]) / ".zcompdump-test"
    out = shell(banger, env, ["zsh", "-f", "-c",
                              f"autoload -Uz compinit && compinit -u -d {dump}\n"
                              "source <(banger completion zsh)\n"
                              "print -r -- comp=${_comps[banger]}\n"
                              + ZSH_STUBS + "_banger_completion\n"])
    assert "comp=_banger_completion" in out
    assert NAME in _zsh_candidates(out)

    out = shell(banger, env, ["zsh", "-f", "-c",
                              f"fpath=({zfunc} $fpath)\n"
                              f"autoload -Uz compinit && compinit -u -d {dump}\n"
                              "print -r -- comp=${_comps[banger]}\n"
                              + ZSH_STUBS + "_banger\n"])
    assert "comp=_banger" in out
    assert NAME in _zsh_candidates(out)


def test_fish_sourced_and_from_its_completions_directory(
    banger: BangerEnv, env: dict[str, str]
) -> None:
    _require("fish")
    out = shell(banger, env, ["fish", "--no-config", "-c",
                              "banger completion fish | source\n"
                              "complete -C'banger vm ssh '"])
    assert NAME in [line.split("\t")[0] for line in out.splitlines()]

    target = Path(env["XDG_CONFIG_HOME"]) / "fish/completions/banger.fish"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(shell(banger, env, ["banger", "completion", "fish"]))
    try:
        out = shell(banger, env, ["fish", "-c", "complete -C'banger vm po'"])
        assert [line.split("\t")[0] for line in out.splitlines()] == ["ports"]
        out = shell(banger, env, ["fish", "-c", f"complete -C'banger vm delete {NAME[:3]}'"])
    finally:
        target.unlink()
    assert [line.split("\t")[0] for line in out.splitlines()] == [NAME]


def test_without_the_daemon_names_complete_to_nothing_quickly(
    banger: BangerEnv, env: dict[str, str]
) -> None:
    _require("bash")
    runtime = Path(tempfile.mkdtemp(prefix="bgr-", dir="/tmp"))
    # Another runtime dir: no socket there, as when bangerd is not running.
    quiet = {**env, "XDG_RUNTIME_DIR": str(runtime)}
    try:
        started = time.monotonic()
        out = shell(banger, quiet, ["bash", "--norc", "--noprofile", "-c",
                                    "source <(banger completion bash)\n" + BASH_REQUEST])
        elapsed = time.monotonic() - started
        assert [line for line in out.splitlines() if line != "reply="] == []
        assert os.listdir(runtime) == []  # and no daemon was started for it
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    assert elapsed < 5.0


def _zsh_candidates(out: str) -> set[str]:
    """Words the completion handed to compadd/_describe (other VMs may exist too)."""
    return {
        word for line in out.splitlines() if line.startswith("cand=")
        for word in line.removeprefix("cand=").split()
    }
