from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from banger.core import agent
from banger.core.agent import Identity, identity_line, parse_reply

IDENTITY = Identity(
    ip_cidr="172.16.0.5/24", gateway="172.16.0.1", dns="172.16.0.1", hostname="calm-otter",
    mac="02:aa:bb:cc:dd:ee", now_ns=1_795_733_868_000_000_042, seed=bytes(range(64)),
)


def test_identity_line_is_one_line_of_single_tokens() -> None:
    line = identity_line(IDENTITY)
    assert line.endswith("\n") and line.count("\n") == 1
    words = line.split()
    assert words[0] == "IDENTITY"
    fields = dict(word.split("=", 1) for word in words[1:])
    assert fields["ip"] == "172.16.0.5/24"
    assert fields["hostname"] == "calm-otter"
    assert fields["time"] == "1795733868.000000042"
    assert bytes.fromhex(fields["seed"]) == bytes(range(64))


@pytest.mark.parametrize("field", ["hostname", "ip_cidr", "mac"])
def test_identity_line_refuses_values_that_would_split(field: str) -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match=field.split("_")[0]):
        identity_line(replace(IDENTITY, **{field: "a b"}))


def test_replies() -> None:
    assert parse_reply("OK\n") == agent.Reply(True, "")
    assert parse_reply("ERR no work disk\n") == agent.Reply(False, "no work disk")
    assert parse_reply("ERR\n") == agent.Reply(False, "unknown error")
    assert parse_reply("READY\n") is None  # a late answer to a ping queued in the template


def test_agent_script_is_valid_perl_with_every_placeholder_filled() -> None:
    assert "__" not in agent.AGENT_SCRIPT
    assert agent.PORT_NAME in agent.AGENT_SCRIPT
    assert f"my $VSOCK_PORT = {agent.VSOCK_PORT};" in agent.AGENT_SCRIPT
    perl = shutil.which("perl")
    if perl is None:
        pytest.skip("no perl")
    # -c compiles without running the main loop; only perl-base modules may be used.
    subprocess.run([perl, "-c", "-"], input=agent.AGENT_SCRIPT, text=True, check=True,
                   capture_output=True)
    for module in ("strict", "warnings", "Fcntl", "POSIX", "Socket"):
        assert f"use {module}" in agent.AGENT_SCRIPT
    assert agent.AGENT_SCRIPT.count("\nuse ") == 5


def test_agent_unit_runs_in_every_vm() -> None:
    # Cold boots too: the agent is every VM's exec channel, and the script itself tells a
    # template (KERNEL_FLAG) from a cold boot.
    assert "ConditionKernelCommandLine" not in agent.AGENT_UNIT
    assert agent.KERNEL_FLAG in agent.AGENT_SCRIPT
    assert agent.AGENT_SCRIPT_PATH in agent.AGENT_UNIT


def test_agent_unit_reports_a_failed_agent_to_the_host() -> None:
    assert f"ExecStopPost={agent.AGENT_FAILED_SCRIPT_PATH}" in agent.AGENT_UNIT


@pytest.mark.parametrize(
    ("result", "status", "reported"),
    [
        ("success", "0", None),  # exited after OK, or stopped at shutdown
        ("exit-code", "203", "ERR banger-agent cannot start: the image has no /usr/bin/perl"),
        ("exit-code", "255", "ERR banger-agent stopped (exit-code, exit status 255)"),
    ],
)
def test_failed_agent_script_says_why_on_the_port(
    tmp_path: Path, result: str, status: str, reported: str | None,
) -> None:
    port = tmp_path / agent.PORT_NAME
    script = agent.AGENT_FAILED_SCRIPT.replace(f"/dev/virtio-ports/{agent.PORT_NAME}", str(port))
    port.touch()
    subprocess.run(["sh", "-c", script], check=True,
                   env={"SERVICE_RESULT": result, "EXIT_STATUS": status, "PATH": "/usr/bin:/bin"})
    written = port.read_text()
    if reported is None:
        assert written == ""
    else:
        assert written == reported + "\n"
        assert parse_reply(written) == agent.Reply(False, reported[4:])


def test_failed_agent_script_without_a_port_stays_quiet(tmp_path: Path) -> None:
    script = agent.AGENT_FAILED_SCRIPT.replace("/dev/virtio-ports/", f"{tmp_path}/none/")
    done = subprocess.run(["sh", "-c", script], env={"SERVICE_RESULT": "exit-code"},
                          capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == ""
