"""The CLI against a fake client: parsing, rendering, and how errors reach the user."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from banger.cli.main import main
from banger.core.errors import (
    BangerError,
    DaemonUnavailable,
    GuestAgentUnavailable,
    ImageBuildFailed,
    InvalidInput,
    Unsupported,
    VMNotFound,
)
from tests.support.cli import ACCESS, FakeClient, run

# errors


@pytest.mark.parametrize(
    ("args", "method", "error"),
    [
        (["vm", "show", "ghost"], "get_vm", VMNotFound("no VM named 'ghost'")),
        (["vm", "delete", "ghost"], "delete_vm", VMNotFound("no VM named 'ghost'")),
        (["vm", "create", "--no-start"], "create_vm",
         ImageBuildFailed("mmdebstrap failed", hint="see the build log")),
        (["image", "pull", "debian-bookworm"], "pull_image",
         ImageBuildFailed("mmdebstrap failed", hint="see the build log")),
        (["daemon", "status"], "status", DaemonUnavailable("bangerd is not running")),
    ],
)
def test_errors_print_error_and_hint_and_exit_1(
    client: FakeClient, capsys: pytest.CaptureFixture[str], args: list[str], method: str,
    error: BangerError,
) -> None:
    client.fail[method] = error
    code, out, err = run(args, capsys)
    assert code == 1
    assert out == ""
    error_lines = [line for line in err.splitlines() if line.startswith(("error:", "hint:"))]
    assert error_lines == [f"error: {error.message}", f"hint: {error.hint}"]
    assert err.endswith(f"error: {error.message}\nhint: {error.hint}\n")
    assert "Traceback" not in err


def test_error_output_is_exactly_two_lines(
    client: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client.fail["get_vm"] = VMNotFound("no VM named 'ghost'")
    assert run(["vm", "show", "ghost"], capsys) == (
        1, "", "error: no VM named 'ghost'\nhint: see `banger vm list` for existing VMs\n"
    )


def test_error_without_hint_prints_one_line(
    client: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client.fail["stop_vm"] = InvalidInput("nope", hint="")
    assert run(["vm", "stop", "dev"], capsys) == (1, "", "error: nope\n")


def test_errors_quoting_a_guest_cannot_drive_the_terminal(
    client: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client.fail["stop_vm"] = InvalidInput("agent said \x1b]0;owned\x07", hint="\x1b[2Jsee it")
    assert run(["vm", "stop", "dev"], capsys) == (
        1, "", "error: agent said \\x1b]0;owned\\x07\nhint: \\x1b[2Jsee it\n"
    )


def test_logs_on_a_terminal_show_escapes_instead_of_obeying_them(
    client: FakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Terminal:
        buffer = io.BytesIO()

        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(client, "vm_logs", lambda name, offset=0: (b"\x1b[2Jboot\r\n", 9))
    main(["vm", "logs", "dev"])
    assert terminal.buffer.getvalue() == b"\\x1b[2Jboot\n"


def test_debug_shows_the_exception(client: FakeClient) -> None:
    client.fail["get_vm"] = VMNotFound("no VM named 'ghost'")
    with pytest.raises(VMNotFound):
        main(["--debug", "vm", "show", "ghost"])


def test_usage_errors_exit_2_without_traceback(
    client: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["vm", "show"], capsys)
    assert code == 2
    assert "error: missing argument NAME" in err
    assert "Traceback" not in err
    code, _, err = run(["vm", "frobnicate"], capsys)
    assert code == 2
    assert "Traceback" not in err


def test_help_and_version(client: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    assert "vm" in out and "image" in out
    code, out, _ = run(["--version"], capsys)
    assert code == 0
    assert "banger" in out
    assert client.calls == []


# vm run / ssh and the guest command


def test_run_passes_everything_after_the_double_dash_to_the_guest_agent(
    client: FakeClient, ssh: dict[str, list[list[str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    client.exec_output = [(b"listing\n", False)]
    code, out, _ = run(["vm", "run", "--", "ls", "-la", "--name", "x", "a b"], capsys)
    assert (code, out) == (0, "listing\n")
    [(_, kwargs)] = client.called("create_vm")
    assert kwargs["name"] is None
    assert kwargs["start"] is True
    # The command needs the agent only, which a cold boot may have up before sshd.
    assert kwargs["ready"] == "agent"
    [(args, kwargs)] = client.called("exec_vm")
    assert args == ("calm-otter", ["ls", "-la", "--name", "x", "a b"])
    assert kwargs["cwd"] is None
    assert ssh == {"exec": [], "run": []}
    assert client.called("vm_access") == []
    assert client.called("delete_vm") == []


def test_run_options_before_the_double_dash_are_ours(
    client: FakeClient, ssh: dict[str, list[list[str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["vm", "run", "--name", "dev", "--vcpu", "4", "--disk-size", "20G", "--", "make"]
    assert run(args, capsys)[0] == 0
    [(_, kwargs)] = client.called("create_vm")
    assert (kwargs["name"], kwargs["vcpu"], kwargs["disk_size"]) == ("dev", 4, "20G")
    assert client.called("exec_vm")[0][0] == ("dev", ["make"])


def test_run_takes_the_network_options_of_create(
    client: FakeClient, ssh: dict[str, list[list[str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["vm", "run", "--egress-allow", "example.org,10.1.0.0/16", "--network-group", "web",
            "--", "true"]
    assert run(args, capsys)[0] == 0
    [(_, kwargs)] = client.called("create_vm")
    assert kwargs["egress_allow"] == ["example.org,10.1.0.0/16"]
    assert (kwargs["network_group"], kwargs["nat"]) == ("web", False)
    assert run(["vm", "run", "--nat", "--", "true"], capsys)[0] == 0
    assert client.called("create_vm")[1][1]["nat"] is True


def test_run_keeps_a_double_dash_inside_the_guest_command(
    client: FakeClient, ssh: dict[str, list[list[str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    run(["vm", "run", "--", "git", "log", "--", "README.md"], capsys)
    assert client.called("exec_vm")[0][0][1] == ["git", "log", "--", "README.md"]


def test_run_rm_deletes_the_vm_and_exits_with_the_guest_status(
    client: FakeClient, ssh: dict[str, list[list[str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    client.exec_result = {"exit_code": None, "signal": 15, "timed_out": False}
    code, _, _ = run(["vm", "run", "--rm", "--name", "dev", "--", "false"], capsys)
    assert code == 128 + 15
    assert ssh == {"exec": [], "run": []}
    assert client.called("delete_vm") == [(("dev",), {"force": True})]


def test_run_rm_deletes_the_vm_when_interrupted(
    client: FakeClient, ssh: dict[str, list[list[str]]], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C: the request ends, and the daemon kills the command

    monkeypatch.setattr(client, "exec_vm", interrupted)
    code, _, _ = run(["vm", "run", "--rm", "--name", "dev", "--", "sleep", "9"], capsys)
    assert code == 130
    assert client.called("delete_vm") == [(("dev",), {"force": True})]


def test_run_falls_back_to_ssh_in_a_vm_without_an_agent(
    client: FakeClient, ssh: dict[str, list[list[str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    client.fail["exec_vm"] = GuestAgentUnavailable("the guest agent cannot start")
    code, _, err = run(["vm", "run", "--rm", "--name", "dev", "--", "make"], capsys)
    assert code == 3
    assert "warning: the guest agent cannot start: running the command over ssh" in err
    assert ssh["run"][0][-1] == "make"
    assert "BatchMode=yes" in ssh["run"][0]
    assert client.called("delete_vm") == [(("dev",), {"force": True})]


def test_run_tty_runs_the_command_over_ssh(
    client: FakeClient, ssh: dict[str, list[list[str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = run(["vm", "run", "-t", "--", "python3", "-i"], capsys)
    assert code == 0
    assert client.called("create_vm")[0][1]["ready"] == "sshd"
    [argv] = ssh["exec"]
    assert argv[-2:] == ["--", "python3 -i"]
    assert argv[argv.index("--") - 1] == "root@172.16.0.2"
    assert client.called("exec_vm") == []


def test_run_without_command_opens_a_shell(
    client: FakeClient, ssh: dict[str, list[list[str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["vm", "run"], capsys)
    assert code == 0
    [argv] = ssh["exec"]
    assert "--" not in argv
    assert argv[-1] == "root@172.16.0.2"
    assert "connecting to calm-otter" in err


def test_run_prints_progress_on_stderr(
    client: FakeClient, ssh: dict[str, list[list[str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, err = run(["vm", "run", "--", "true"], capsys)
    assert "spec: 2 vCPU, 2048 MiB RAM, 8G disk\n" in err
    assert out == ""


def test_run_with_a_path_outside_git_fails_before_making_a_vm(
    client: FakeClient, ssh: dict[str, list[list[str]]], capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    code, _, err = run(["vm", "run", str(tmp_path), "--", "make"], capsys)
    assert code == 1
    assert err.startswith(f"error: {tmp_path} is not inside a git repository\nhint: ")
    assert client.calls == []


def test_ssh_runs_the_guest_command(
    client: FakeClient, ssh: dict[str, list[list[str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    run(["vm", "ssh", "dev", "--", "uname", "-a"], capsys)
    [argv] = ssh["exec"]
    assert argv[-2:] == ["--", "uname -a"]
    assert f"UserKnownHostsFile={ACCESS['known_hosts']}" in argv


def test_image_warm_for_another_backend(
    client: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["image", "warm", "--backend", "firecracker", "debian-bookworm"], capsys)
    assert code == 0
    assert client.calls == [
        ("warm_image", ("debian-bookworm",), {"force": False, "backend": "firecracker"})
    ]
    assert "warm template: 2 vCPU / 1024 MiB" in out


def test_image_show_names_each_backends_template(
    client: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(["image", "show", "debian-bookworm"], capsys)
    [line] = [line for line in out.splitlines() if line.startswith("template")]
    assert "2 vCPU / 1024 MiB" in line and "qemu:" not in line  # one: as it always was
    _, out, _ = run(["image", "show", "both-backends"], capsys)
    [line] = [line for line in out.splitlines() if line.startswith("template")]
    assert "qemu: 2 vCPU / 1024 MiB" in line and "; firecracker: 1 vCPU / 1024 MiB" in line
    _, out, _ = run(["image", "show", "both-backends", "--json"], capsys)
    shown = json.loads(out)
    assert shown["template"]["backend"] == "qemu"
    assert sorted(shown["templates"]) == ["firecracker", "qemu"]


# rendering


@pytest.mark.parametrize(
    "args",
    [
        ["vm", "list", "--json"],
        ["vm", "show", "dev", "--json"],
        ["vm", "create", "--no-start", "--json"],
        ["image", "list", "--json"],
        ["image", "show", "debian-bookworm", "--json"],
        ["daemon", "status", "--json"],
        ["doctor", "--json"],
    ],
)
def test_json_output_parses(
    client: FakeClient, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, out, _ = run(args, capsys)
    assert code == 0
    json.loads(out)


def test_daemon_status_names_the_network_mode(
    client: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(["daemon", "status"], capsys)
    assert "network" in out and "user-mode networking" in out


def test_vm_json_fields(client: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(["vm", "show", "dev", "--json"], capsys)
    data = json.loads(out)
    assert data["state"] == "running"
    assert data["spec"] == {"vcpu": 2, "memory_mib": 2048, "disk_size_bytes": 8 << 30}
    _, out, _ = run(["vm", "list", "--json"], capsys)
    assert [v["name"] for v in json.loads(out)] == ["dev", "idle"]


def test_vm_list_table(client: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(["vm", "list"], capsys)
    header, first, second = out.splitlines()
    assert header.split()[:3] == ["NAME", "STATE", "IP"]
    assert first.split()[:3] == ["dev", "running", "172.16.0.2"]
    assert second.split()[:3] == ["idle", "stopped", "172.16.0.3"]


def test_vm_show_fields(client: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(["vm", "show", "dev"], capsys)
    assert "dns:" in out and "dev.vm" in out
    assert "8G" in out


def test_lifecycle_commands(client: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["vm", "stop", "dev"], capsys)[1] == "dev stopped\n"
    assert run(["vm", "kill", "dev", "--signal", "TERM"], capsys)[1] == "dev stopped\n"
    assert client.called("kill_vm") == [(("dev", "TERM"), {})]
    assert run(["vm", "delete", "-f", "a", "b"], capsys)[1] == "deleted a\ndeleted b\n"
    assert client.called("delete_vm") == [(("a",), {"force": True}), (("b",), {"force": True})]
    _, out, _ = run(["vm", "set", "dev", "--memory", "4096", "--disk-size", "16G"], capsys)
    assert out == "dev: 4 vCPU, 4096 MiB, 16G disk\n"
    assert client.called("set_vm") == [
        (("dev",), {"vcpu": None, "memory_mib": 4096, "disk_size": "16G", "nat": None,
                    "egress_allow": None, "network_group": None})
    ]


def test_logs(client: FakeClient, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    main(["vm", "logs", "dev"])
    assert capfdbinary.readouterr().out == b"[    0.000000] Linux version 6.1\n"


def test_doctor_exits_1_only_on_required_failures(
    client: FakeClient, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(["doctor"], capsys)
    assert code == 0
    assert "hint: apt-get install mmdebstrap" in out
    failing = {"name": "qemu-img", "status": "fail", "detail": "missing", "hint": "install",
               "required": True}
    checks = [*client.doctor(), failing]
    monkeypatch.setattr(client, "doctor", lambda: checks)
    assert run(["doctor"], capsys)[0] == 1


def test_image_register(
    client: FakeClient, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rootfs, kernel = tmp_path / "rootfs.ext4", tmp_path / "vmlinuz"
    rootfs.write_bytes(b"r")
    kernel.write_bytes(b"k")
    args = ["image", "register", "--name", "mine", "--rootfs", str(rootfs), "--kernel",
            str(kernel)]
    assert run(args, capsys)[:2] == (0, "registered mine\n")
    assert client.called("register_image") == [(("mine", str(rootfs), str(kernel), None), {})]


def test_image_export_import_and_forced_delete(
    client: FakeClient, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["image", "export", "debian-bookworm", "-o", "b.tar.zst"], capsys)
    assert (code, out) == (0, f"{tmp_path / 'b.tar.zst'} 300M\n")
    assert client.called("export_image") == [
        (("debian-bookworm", str(tmp_path / "b.tar.zst")), {})]
    (tmp_path / "b.tar.zst").write_bytes(b"x")
    assert run(["image", "import", "b.tar.zst", "--name", "moved"], capsys)[:2] == (
        0, "moved 700M\n")
    assert client.called("import_image") == [
        ((str(tmp_path / "b.tar.zst"),), {"as_name": "moved"})]
    assert run(["image", "delete", "--force", "moved"], capsys)[0] == 0
    assert client.called("delete_image") == [(("moved",), {"force": True})]


# pause, resume, snapshots


@pytest.mark.parametrize(
    ("args", "method", "printed"),
    [
        (["vm", "pause", "dev"], "pause_vm", "dev paused"),
        (["vm", "resume", "dev"], "resume_vm", "dev running"),
        (["vm", "snapshot", "dev"], "snapshot_vm",
         "dev: snapshot saved in /state/vms/0123456789ab/snapshot"),
    ],
)
def test_pause_resume_snapshot_call_the_client(
    client: FakeClient, capsys: pytest.CaptureFixture[str], args: list[str], method: str,
    printed: str,
) -> None:
    code, out, _ = run(args, capsys)
    assert code == 0
    assert client.called(method) == [(("dev",), {})]
    assert out.strip() == printed


def test_start_from_snapshot(client: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["vm", "start", "dev", "--from-snapshot"], capsys)[0] == 0
    assert run(["vm", "start", "dev"], capsys)[0] == 0
    assert client.called("start_vm") == [
        (("dev",), {"from_snapshot": True}), (("dev",), {"from_snapshot": False}),
    ]


def test_unsupported_backend_is_explained(
    client: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client.fail["snapshot_vm"] = Unsupported(
        "the qemu backend of VM 'dev' does not support snapshots",
        hint="create the VM with --backend firecracker for pause/resume and snapshots",
    )
    code, _, err = run(["vm", "snapshot", "dev"], capsys)
    assert code == 1
    assert err.splitlines() == [
        "error: the qemu backend of VM 'dev' does not support snapshots",
        "hint: create the VM with --backend firecracker for pause/resume and snapshots",
    ]


@pytest.mark.parametrize(("args", "message"), [
    (["vm", "show"], "error: missing argument NAME (see `banger vm show --help`)\n"),
    (["vm", "delete"], "error: missing argument NAMES (see `banger vm delete --help`)\n"),
    (["vm", "create", "--vcpu", "two"],
     "error: argument --vcpu: invalid int value: 'two' (see `banger vm create --help`)\n"),
    (["vm", "lst"], "error: no command 'lst' in `banger vm` (did you mean 'list'?) "
     "(see `banger vm --help`)\n"),
    (["--bogus"], "error: unknown option --bogus (see `banger --help`)\n"),
    (["vm", "list", "--debug"],
     "error: unrecognized arguments: --debug (see `banger vm list --help`)\n"),
])
def test_usage_errors_are_one_line(
    client: FakeClient, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert run(args, capsys) == (2, "", message)
    assert client.calls == []


def test_a_group_without_a_command_shows_its_commands(
    client: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["vm"], capsys)
    assert code == 2
    assert out == ""
    assert "  list " in err and "  workspace " in err


def test_vm_set_nat_is_on_off_or_untouched(
    client: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    for args, nat in ((["--nat"], True), (["--no-nat"], False), ([], None)):
        run(["vm", "set", "dev", *args], capsys)
        assert client.called("set_vm")[-1][1]["nat"] is nat


def test_vm_set_egress_and_group(client: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    run(["vm", "set", "dev", "--egress-allow", "example.org,10.1.0.0/16",
         "--network-group", "web"], capsys)
    called = client.called("set_vm")[-1][1]
    assert called["egress_allow"] == ["example.org,10.1.0.0/16"]
    assert called["network_group"] == "web"
    run(["vm", "set", "dev", "--egress-allow", ""], capsys)
    assert client.called("set_vm")[-1][1]["egress_allow"] == [""]


def test_version_and_help_print_without_touching_the_daemon(
    client: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--version"], capsys) == (0, "banger, version 0.1.0\n", "")
    code, out, _ = run(["vm", "run", "--help"], capsys)
    assert code == 0
    assert "[-- COMMAND ...]" in out and "banger vm run --rm -- make test" in out
    assert client.calls == []
