"""bangerd's startup pieces: the private socket, the single-instance lock, the config, and the
log line the CLI reads back when the daemon fails to start."""

from __future__ import annotations

import logging
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from banger.client.daemonstart import _LogMark, _startup_error
from banger.core.config import Config
from banger.core.errors import ConfigError, DaemonUnavailable
from banger.daemon.logs import JSONLogFormatter
from banger.daemon.main import _acquire_lock, _bind_socket, load_config
from tests.support.daemon_env import make_paths


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Unix socket paths are limited to ~107 bytes; pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="bgr-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_socket_is_0600_in_a_0700_dir(short_dir: Path) -> None:
    path = short_dir / "run" / "bangerd.sock"
    sock = _bind_socket(path)
    try:
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    finally:
        sock.close()


def test_socket_replaces_a_stale_one(short_dir: Path) -> None:
    path = short_dir / "bangerd.sock"
    _bind_socket(path).close()
    # The previous daemon died without removing its socket.
    sock = _bind_socket(path)
    try:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(path))
        client.close()
    finally:
        sock.close()


def test_only_one_daemon_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "bangerd.lock"
    first = _acquire_lock(path)
    assert first is not None
    try:
        assert _acquire_lock(path) is None
        assert path.read_text().strip().isdigit()
    finally:
        first.close()
    second = _acquire_lock(path)
    assert second is not None
    second.close()


def test_missing_config_file_means_defaults(tmp_path: Path) -> None:
    assert load_config(make_paths(tmp_path)) == Config()


def test_bad_config_names_the_file(tmp_path: Path) -> None:
    paths = make_paths(tmp_path)
    paths.config_dir.mkdir(parents=True)
    paths.config_file.write_text("colour = 'blue'\n")
    with pytest.raises(ConfigError) as info:
        load_config(paths)
    assert str(paths.config_file) in info.value.message
    assert "'colour'" in info.value.message


def test_startup_failure_reaches_the_cli_as_the_typed_error(tmp_path: Path) -> None:
    log_file = tmp_path / "bangerd.log"
    log_file.write_text('{"msg": "an older run"}\n')
    offset = log_file.stat().st_size
    handler = logging.FileHandler(log_file)
    handler.setFormatter(JSONLogFormatter())
    logger = logging.getLogger("banger.test-startup")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        error = ConfigError("config.toml: unknown config key 'colour'")
        logger.error(error.message, extra={"code": error.code, "hint": error.hint})
    finally:
        logger.removeHandler(handler)
        handler.close()
    back = _startup_error(_LogMark(log_file, offset), _LogMark.at_end_of(tmp_path / "x"), 2)
    assert type(back) is ConfigError
    assert back.message == "config.toml: unknown config key 'colour'"
    assert back.hint == ConfigError.default_hint


def test_startup_failure_without_a_typed_line(tmp_path: Path) -> None:
    # A crash before logging is set up leaves its traceback in bangerd.stderr, not the log.
    log_file = tmp_path / "bangerd.log"
    log_file.write_text('{"msg": "bangerd starting"}\n')
    raw_file = tmp_path / "bangerd.stderr"
    raw_file.write_text(
        "an older run\nTraceback (most recent call last):\nImportError: no module\n\n"
    )
    back = _startup_error(_LogMark(log_file, 0), _LogMark(raw_file, len("an older run\n")), 1)
    assert isinstance(back, DaemonUnavailable)
    assert "ImportError: no module" in back.message
    assert str(raw_file) in back.hint
