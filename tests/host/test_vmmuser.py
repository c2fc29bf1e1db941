from __future__ import annotations

import pwd

import pytest

from banger.core.confine import RunAs
from banger.host import vmmuser
from banger.host.vmmuser import SystemVMMUser
from tests.support.host_fakes import FakeRunner


def entry(uid: int) -> pwd.struct_passwd:
    return pwd.struct_passwd(("banger-vmm", "x", uid, uid, "", "/nonexistent", "/bin/false"))


async def test_a_root_daemon_makes_the_system_user_once(monkeypatch: pytest.MonkeyPatch) -> None:
    users: dict[str, pwd.struct_passwd] = {}

    def getpwnam(name: str) -> pwd.struct_passwd:
        return users[name]

    runner = FakeRunner()
    original_run = runner.run

    async def useradd(argv: list[str], **kwargs: object) -> object:
        users[argv[-1]] = entry(996)
        return await original_run(argv)

    monkeypatch.setattr(vmmuser.os, "geteuid", lambda: 0)
    monkeypatch.setattr(vmmuser.pwd, "getpwnam", getpwnam)
    monkeypatch.setattr(runner, "run", useradd)
    user = SystemVMMUser("banger-vmm", runner)
    assert await user.run_as() == RunAs(996, 996)
    assert await user.run_as() == RunAs(996, 996)
    assert len(runner.calls) == 1
    argv = runner.calls[0]
    assert argv[0] == "useradd" and argv[-1] == "banger-vmm"
    assert {"--system", "--no-create-home"} <= set(argv)
    assert argv[argv.index("--shell") + 1] == "/usr/sbin/nologin"


async def test_no_user_when_not_root_or_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vmmuser.os, "geteuid", lambda: 1000)
    assert await SystemVMMUser("banger-vmm", FakeRunner()).run_as() is None
    monkeypatch.setattr(vmmuser.os, "geteuid", lambda: 0)
    assert await SystemVMMUser("", FakeRunner()).run_as() is None
