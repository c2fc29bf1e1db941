"""`[[file_sync]]` entries staged onto a new VM's work disk."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from banger.core.config import parse_config
from banger.core.models import ProgressEvent
from banger.daemon.filesync import stage_file_sync
from tests.support.daemon_env import make_env


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def entries(text: str) -> Any:
    return parse_config(text).file_sync


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws/credentials").write_text("[default]\n")
    (home / ".aws/sso/cache").mkdir(parents=True)
    (home / ".aws/sso/cache/token.json").write_text("{}")
    (home / ".aws/link-to-creds").symlink_to(home / ".aws/credentials")
    (home / ".aws/dangling").symlink_to(home / "nowhere")
    (home / "bin").mkdir()
    (home / "bin/tool").write_text("#!/bin/sh\n")
    (home / ".gitconfig").write_text("[user]\n")
    return home


def test_files_and_directories_land_below_root_with_their_modes(
    home: Path, tmp_path: Path
) -> None:
    staging = tmp_path / "staging"
    warnings = stage_file_sync(entries(
        '[[file_sync]]\nhost = "~/.aws"\nguest = "~/.aws"\n'
        '[[file_sync]]\nhost = "~/bin/tool"\nguest = "/root/bin/tool"\nmode = "0755"\n'
        f'[[file_sync]]\nhost = "{home}/.gitconfig"\nguest = "~/.config/git/config"\n'
        '[[file_sync]]\nhost = "~/.aws"\nguest = "~/aws-public"\nmode = "644"\n'
    ), staging, home)
    assert warnings == []
    assert (staging / ".aws/credentials").read_text() == "[default]\n"
    assert mode_of(staging / ".aws/credentials") == 0o600
    assert mode_of(staging / ".aws") == 0o700
    assert mode_of(staging / ".aws/sso/cache") == 0o700
    assert (staging / ".aws/sso/cache/token.json").read_text() == "{}"
    # A symlink to a file arrives as the file; a dangling one is left out.
    assert not (staging / ".aws/link-to-creds").is_symlink()
    assert (staging / ".aws/link-to-creds").read_text() == "[default]\n"
    assert not (staging / ".aws/dangling").exists()
    assert mode_of(staging / "bin/tool") == 0o755
    assert mode_of(staging / ".config/git/config") == 0o600
    assert mode_of(staging / "aws-public/sso/cache/token.json") == 0o644


def test_missing_sources_are_warnings(home: Path, tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    warnings = stage_file_sync(entries(
        '[[file_sync]]\nhost = "~/.nope"\nguest = "~/.nope"\n'
        '[[file_sync]]\nhost = "~/.gitconfig"\nguest = "~/.gitconfig"\n'
    ), staging, home)
    assert warnings == ["file_sync: ~/.nope does not exist on the host; skipped"]
    assert (staging / ".gitconfig").exists()


def test_nothing_already_staged_is_replaced(home: Path, tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    (staging / ".ssh").mkdir(parents=True)
    (staging / ".ssh/config").write_text("banger's\n")
    warnings = stage_file_sync(entries(
        '[[file_sync]]\nhost = "~/.gitconfig"\nguest = "~/.ssh/config"\n'
        '[[file_sync]]\nhost = "~/bin/tool"\nguest = "~/.gitconfig"\n'
        '[[file_sync]]\nhost = "~/.gitconfig"\nguest = "~/.gitconfig"\n'
    ), staging, home)
    assert (staging / ".ssh/config").read_text() == "banger's\n"
    assert (staging / ".gitconfig").read_text() == "#!/bin/sh\n"
    assert len(warnings) == 2 and all("already on the work disk" in w for w in warnings)


async def test_create_stages_entries_and_reports_missing_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: home))
    config = parse_config(
        '[[file_sync]]\nhost = "~/.aws"\nguest = "~/.aws"\n'
        '[[file_sync]]\nhost = "~/.missing"\nguest = "~/.missing"\n'
    )
    env = make_env(tmp_path / "env", config)
    await env.keys.make_ed25519(env.paths.default_ssh_key, "banger")
    staged: dict[str, Any] = {}
    original = env.disks.create_work_disk

    async def spy(path: Path, size_bytes: int, staging: Path) -> None:
        staged["credentials"] = (staging / ".aws/credentials").read_text()
        staged["authorized_keys"] = (staging / ".ssh/authorized_keys").exists()
        await original(path, size_bytes, staging)

    monkeypatch.setattr(env.disks, "create_work_disk", spy)
    events: list[ProgressEvent] = []
    vm = await env.services.vms.create(
        name="dev", image=None, vcpu=None, memory_mib=None, disk_size=None, start=False,
        progress=events.append,
    )
    assert staged == {"credentials": "[default]\n", "authorized_keys": True}
    warnings = [e for e in events if e.stage == "warning"]
    assert [e.message for e in warnings] == [
        "warning: file_sync: ~/.missing does not exist on the host; skipped"
    ]
    assert vm.state == "created"
    env.services.store.close()
