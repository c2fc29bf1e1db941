"""`banger ssh-config`: the file edit itself (modes, symlinks, bytes), without a daemon."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from banger.cli import sshconfig as cli_sshconfig
from banger.cli.main import main
from banger.core.sshconfig import BEGIN, include_block


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setattr(cli_sshconfig, "_passwd_home", lambda: str(home))
    return home


def run(*args: str) -> None:
    main(["ssh-config", *args])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_without_options_prints_the_include_line(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run()
    out, err = capsys.readouterr()
    assert out == "Include ~/.config/banger/ssh_config\n"
    assert "--install" in err
    assert not (home / ".ssh").exists()


def test_the_include_is_absolute_when_banger_lives_outside_the_ssh_home(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", "/srv/conf")
    run()
    assert capsys.readouterr().out == "Include /srv/conf/banger/ssh_config\n"


def test_install_creates_ssh_dir_and_file_private(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run("--install")
    config = home / ".ssh" / "config"
    assert config.read_text() == include_block("~/.config/banger/ssh_config")
    assert mode(home / ".ssh") == 0o700
    assert mode(config) == 0o600
    assert "added `Include ~/.config/banger/ssh_config`" in capsys.readouterr().out


def test_install_uninstall_round_trip_is_byte_identical_and_keeps_the_mode(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (home / ".ssh").mkdir(mode=0o755)
    config = home / ".ssh" / "config"
    # Not UTF-8, CRLF, no final newline: it all comes back unchanged.
    original = b"Host old\r\n    User caf\xe9\n\nHost *\n\tServerAliveInterval 30"
    config.write_bytes(original)
    config.chmod(0o640)

    run("--install")
    assert config.read_bytes().startswith(BEGIN.encode())
    assert config.read_bytes().endswith(original)
    assert mode(config) == 0o640
    assert mode(home / ".ssh") == 0o755
    run("--install")
    assert "already set up" in capsys.readouterr().out.splitlines()[-1]

    run("--uninstall")
    assert config.read_bytes() == original
    assert mode(config) == 0o640
    assert "removed banger's block" in capsys.readouterr().out
    run("--uninstall")
    assert "no banger block" in capsys.readouterr().out
    assert config.read_bytes() == original
    assert [p.name for p in (home / ".ssh").iterdir()] == ["config"]  # no temp files left


def test_a_symlinked_config_is_edited_where_it_points(home: Path) -> None:
    dotfiles = home / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "ssh_config"
    real.write_text("Host a\n")
    (home / ".ssh").mkdir()
    (home / ".ssh" / "config").symlink_to(real)

    run("--install")
    assert (home / ".ssh" / "config").is_symlink()
    assert real.read_text().endswith("Host a\n")
    run("--uninstall")
    assert real.read_text() == "Host a\n"


def test_uninstall_without_a_config_creates_nothing(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run("--uninstall")
    assert "no banger block" in capsys.readouterr().out
    assert not (home / ".ssh").exists()


def test_a_broken_block_is_reported_not_guessed(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (home / ".ssh").mkdir()
    config = home / ".ssh" / "config"
    config.write_text(f"{BEGIN}\nHost a\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["ssh-config", "--uninstall"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ~/.ssh/config has an unmatched")
    assert "hint: " in err
    assert config.read_text() == f"{BEGIN}\nHost a\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_an_unwritable_directory_is_a_clean_error(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (home / ".ssh").mkdir()
    (home / ".ssh" / "config").write_text("Host a\n")
    (home / ".ssh").chmod(0o500)
    try:
        with pytest.raises(SystemExit):
            main(["ssh-config", "--install"])
    finally:
        (home / ".ssh").chmod(0o700)
    assert capsys.readouterr().err.startswith("error: cannot write")
