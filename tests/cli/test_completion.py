"""Shell completion: the scripts, the requests shells send, live names from a daemon, and
nothing (quickly) without one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from banger.cli.main import main
from banger.cli.spec import Command
from tests.support.fake_daemon import FakeDaemon


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # Unix socket paths are limited to 108 bytes: not under pytest's long tmp_path.
    root = Path(tempfile.mkdtemp(prefix="bgc-", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(root))
    monkeypatch.setenv("HOME", str(root / "home"))
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    (root / "banger").mkdir()
    try:
        yield root / "banger" / "bangerd.sock"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def daemon(runtime: Path) -> Iterator[FakeDaemon]:
    fake = FakeDaemon(runtime)
    try:
        yield fake
    finally:
        fake.close()


def complete(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], line: str,
    shell: str = "bash",
) -> list[str]:
    """What banger answers a `shell` asking to complete `line` (the cursor at its end)."""
    words = line.split()
    new_word = line.endswith(" ")
    monkeypatch.setenv("_BANGER_COMPLETE", f"{shell}_complete")
    if shell == "powershell":
        monkeypatch.setenv("COMP_LINE", line)
    elif shell == "fish":
        monkeypatch.setenv("COMP_WORDS", line)
        monkeypatch.setenv("COMP_CWORD", "" if new_word else words[-1])
    else:
        monkeypatch.setenv("COMP_WORDS", line)
        monkeypatch.setenv("COMP_CWORD", str(len(words) if new_word else len(words) - 1))
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    if shell == "bash":
        return [item.split(",", 1)[1] for item in out.splitlines() if item]
    if shell == "zsh":
        lines = out.splitlines()
        return [lines[i + 1] for i in range(0, len(lines), 3)]
    if shell == "fish":
        return [item.split(",", 1)[1].split("\t")[0] for item in out.splitlines() if item]
    return [item.split("\t")[1] for item in out.splitlines() if item]


# the scripts


@pytest.mark.parametrize(("shell", "marker"), [
    ("bash", "complete -o nosort -F _banger_completion banger"),
    ("zsh", "#compdef banger"),
    ("fish", "complete --no-files --command banger"),
    ("powershell", "Register-ArgumentCompleter -Native -CommandName banger"),
])
def test_completion_prints_a_script_per_shell(
    shell: str, marker: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["completion", shell])
    script = capsys.readouterr().out
    assert marker in script
    assert f"_BANGER_COMPLETE={shell}_complete" in script or (
        f"_BANGER_COMPLETE = '{shell}_complete'" in script
    )
    assert script.endswith("\n")


def test_completion_help_shows_a_recipe_for_each_shell(
    capsys: pytest.CaptureFixture[str]
) -> None:
    main(["completion", "--help"])
    text = capsys.readouterr().out
    for recipe in (
        "source <(banger completion bash)",
        "banger completion bash > ~/.local/share/bash-completion/completions/banger",
        "banger completion zsh > ~/.zfunc/_banger",
        "banger completion fish > ~/.config/fish/completions/banger.fish",
        "banger completion powershell | Out-String | Invoke-Expression",
    ):
        assert recipe in text


def test_an_unknown_shell_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["completion", "tcsh"])
    assert exit_info.value.code == 2


# commands, options and live names


def test_commands_and_options(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], runtime: Path
) -> None:
    top = complete(monkeypatch, capsys, "banger ")
    assert {"vm", "image", "kernel", "daemon", "doctor", "ssh-config", "completion"} <= set(top)
    assert "ports" in complete(monkeypatch, capsys, "banger vm ")
    assert complete(monkeypatch, capsys, "banger vm po") == ["ports"]
    assert "--image" in complete(monkeypatch, capsys, "banger vm create --")
    assert complete(monkeypatch, capsys, "banger ssh-config --") == [
        "--install", "--uninstall", "--help",
    ]
    assert complete(monkeypatch, capsys, "banger completion ") == [
        "bash", "zsh", "fish", "powershell",
    ]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish", "powershell"])
def test_vm_names_come_from_the_daemon(
    shell: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    daemon: FakeDaemon,
) -> None:
    assert complete(monkeypatch, capsys, "banger vm ssh ", shell) == ["box", "bold-otter", "web"]
    assert complete(monkeypatch, capsys, "banger vm ports bo", shell) == ["box", "bold-otter"]
    assert daemon.requests == ["/v1/vms", "/v1/vms"]


def test_names_by_kind(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], daemon: FakeDaemon
) -> None:
    assert complete(monkeypatch, capsys, "banger vm create --image ") == [
        "debian-bookworm", "alpine",
    ]
    assert complete(monkeypatch, capsys, "banger vm run --image=deb") == ["debian-bookworm"]
    assert complete(monkeypatch, capsys, "banger image delete ") == ["debian-bookworm", "alpine"]
    assert complete(monkeypatch, capsys, "banger kernel show ") == ["generic-6.1"]
    assert complete(monkeypatch, capsys, "banger vm create --kernel ") == ["generic-6.1"]
    assert complete(monkeypatch, capsys, "banger vm workspace export ") == [
        "box", "bold-otter", "web",
    ]
    # Names already given are not offered again.
    assert complete(monkeypatch, capsys, "banger vm delete box web ") == ["bold-otter"]
    # Commands without a name argument do not ask the daemon.
    daemon.requests.clear()
    complete(monkeypatch, capsys, "banger vm list ")
    assert daemon.requests == []


def test_without_a_daemon_names_complete_to_nothing_and_none_is_started(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], runtime: Path
) -> None:
    started = time.monotonic()
    assert complete(monkeypatch, capsys, "banger vm ssh ") == []
    assert time.monotonic() - started < 1.0
    assert not runtime.exists()
    assert not (runtime.parent.parent / "home").exists()  # no state dir, no daemon log


def test_a_daemon_that_does_not_answer_costs_half_a_second(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], runtime: Path
) -> None:
    silent = FakeDaemon(runtime, silent=True)
    try:
        started = time.monotonic()
        assert complete(monkeypatch, capsys, "banger vm ssh ") == []
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert 0.4 < elapsed < 1.5


def test_powershell_completes_the_word_at_the_cursor(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], daemon: FakeDaemon
) -> None:
    monkeypatch.setenv("_BANGER_COMPLETE", "powershell_complete")
    monkeypatch.setenv("COMP_LINE", "banger vm ssh w")
    with pytest.raises(SystemExit):
        main([])
    assert capsys.readouterr().out == "plain\tweb\t\n"
    monkeypatch.setenv("COMP_LINE", "banger v")
    with pytest.raises(SystemExit):
        main([])
    assert capsys.readouterr().out == "plain\tvm\tCreate, run and manage VMs.\n"


def test_the_completion_path_stays_light(runtime: Path) -> None:
    """A Tab must not pay for the daemon's or the renderer's imports."""
    code = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
        "from banger.cli.main import main\n"
        "main()\n"
    )
    env = {
        **os.environ, "_BANGER_COMPLETE": "bash_complete", "COMP_WORDS": "banger vm ssh ",
        "COMP_CWORD": "3",
    }
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    modules = {name.split(".")[0] for name in json.loads(proc.stderr.splitlines()[-1])}
    assert modules.isdisjoint({"asyncssh", "aiohttp", "pydantic", "rich"})



def test_bash_splits_option_values_at_the_equals_sign(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], daemon: FakeDaemon
) -> None:
    """bash hands `--image=deb` over as three words; the value completes on its own."""
    monkeypatch.setenv("_BANGER_COMPLETE", "bash_complete")
    monkeypatch.setenv("COMP_WORDS", "banger vm create --image = deb")
    monkeypatch.setenv("COMP_CWORD", "5")
    with pytest.raises(SystemExit):
        main([])
    assert capsys.readouterr().out == "plain,debian-bookworm\n"


def test_other_shells_get_the_whole_option_word_back(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], daemon: FakeDaemon
) -> None:
    assert complete(monkeypatch, capsys, "banger vm run --image=deb", "fish") == [
        "--image=debian-bookworm",
    ]


def test_paths_and_choices(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], runtime: Path
) -> None:
    monkeypatch.setenv("_BANGER_COMPLETE", "bash_complete")
    monkeypatch.setenv("COMP_WORDS", "banger image register --rootfs ./ro")
    monkeypatch.setenv("COMP_CWORD", "4")
    with pytest.raises(SystemExit):
        main([])
    assert capsys.readouterr().out == "file,./ro\n"  # the shell completes file names
    assert complete(monkeypatch, capsys, "banger vm create --backend ") == [
        "qemu", "firecracker",
    ]
    # Options already given are not offered again; nothing after the guest's `--`.
    assert "--rm" not in complete(monkeypatch, capsys, "banger vm run --rm --")
    assert complete(monkeypatch, capsys, "banger vm run -- ls --") == []


def test_every_noun_short_help_matches_its_module() -> None:
    """main.py repeats each noun's one-line help so `banger --help` imports none of them."""
    from banger.cli.main import ROOT
    from banger.cli.spec import Lazy

    for name, node in ROOT.children.items():
        assert isinstance(node, Lazy)
        assert node.load().short_help == node.short_help, name
    vm = ROOT.child("vm")
    assert vm is not None and not isinstance(vm, Command)
    workspace = vm.children["workspace"]
    assert isinstance(workspace, Lazy)
    assert workspace.load().short_help == workspace.short_help
