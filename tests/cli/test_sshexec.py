from __future__ import annotations

import shlex

from hypothesis import given
from hypothesis import strategies as st

from banger.cli.sshexec import forward_argv, loopback_forwarded, ssh_argv

ACCESS = {
    "name": "dev", "ip": "172.16.0.2", "user": "root",
    "identity_file": "/cfg/banger/ssh/id_ed25519",
    "known_hosts": "/cfg/banger/ssh/known_hosts",
}
ARGS = st.lists(st.text(alphabet=st.characters(blacklist_characters="\x00")), max_size=6)


def options(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv) if word == "-o"]


def remote(argv: list[str]) -> str:
    assert argv[-2] == "--"
    return argv[-1]


@given(ARGS.filter(bool))
def test_the_remote_command_splits_back_into_the_arguments(command: list[str]) -> None:
    argv = ssh_argv(ACCESS, command, interactive=False)
    assert shlex.split(remote(argv)) == command


@given(ARGS, st.booleans())
def test_host_keys_are_always_checked_against_bangers_known_hosts(
    command: list[str], interactive: bool
) -> None:
    argv = ssh_argv(ACCESS, command, interactive=interactive, cwd="/root/src")
    opts = options(argv)
    assert "StrictHostKeyChecking=yes" in opts
    assert f"UserKnownHostsFile={ACCESS['known_hosts']}" in opts
    assert "GlobalKnownHostsFile=/dev/null" in opts
    assert not any(o.startswith("StrictHostKeyChecking=") and o != "StrictHostKeyChecking=yes"
                   for o in opts)
    assert "StrictHostKeyChecking=no" not in argv
    assert "UserKnownHostsFile=/dev/null" not in argv


def test_only_bangers_key_and_no_user_config() -> None:
    argv = ssh_argv(ACCESS, ["true"], interactive=False)
    assert argv[0] == "ssh"
    assert argv[argv.index("-F") + 1] == "none"
    assert argv[argv.index("-i") + 1] == ACCESS["identity_file"]
    assert "IdentitiesOnly=yes" in options(argv)
    assert argv[argv.index("--") - 1] == "root@172.16.0.2"


def test_metacharacters_reach_the_guest_literally() -> None:
    command = ["echo", "$HOME", "a;b", "it's", "*", "`id`", ""]
    argv = ssh_argv(ACCESS, command, interactive=False)
    assert remote(argv) == "echo '$HOME' 'a;b' 'it'\"'\"'s' '*' '`id`' ''"


def test_interactive_gets_a_tty_and_batch_mode_does_not() -> None:
    interactive = ssh_argv(ACCESS, [], interactive=True)
    assert "-t" in interactive
    assert "BatchMode=yes" not in options(interactive)
    batch = ssh_argv(ACCESS, ["true"], interactive=False)
    assert "-t" not in batch
    assert "BatchMode=yes" in options(batch)


def test_no_command_means_a_login_shell() -> None:
    argv = ssh_argv(ACCESS, [], interactive=True)
    assert argv[-1] == "root@172.16.0.2"
    assert "--" not in argv


def test_cwd_is_quoted() -> None:
    argv = ssh_argv(ACCESS, ["make", "test"], cwd="/root/my project", interactive=False)
    assert remote(argv) == "cd '/root/my project' && make test"
    shell = ssh_argv(ACCESS, [], cwd="/root/src", interactive=True)
    assert remote(shell) == 'cd /root/src && exec "$SHELL" -l'


def test_classic_curve25519_kex_only() -> None:
    # The post-quantum hybrid kex costs noticeable time per connection to a TCG guest.
    opts = options(ssh_argv(ACCESS, ["true"], interactive=True))
    kex = [o for o in opts if o.startswith("KexAlgorithms=")]
    assert kex == ["KexAlgorithms=curve25519-sha256,curve25519-sha256@libssh.org"]


def test_a_loopback_port_is_reached_with_the_key_pinned_under_the_name() -> None:
    access = {**ACCESS, "ip": "10.0.2.15", "ssh_host": "127.0.0.1", "ssh_port": "40022"}
    argv = ssh_argv(access, ["true"], interactive=False)
    assert argv[argv.index("-p") + 1] == "40022"
    assert "HostKeyAlias=dev.vm" in options(argv)
    assert argv[-3] == "root@127.0.0.1"
    assert "-p" not in ssh_argv(ACCESS, ["true"], interactive=False)


def test_forward_goes_through_the_guests_sshd_to_its_own_address() -> None:
    access = {**ACCESS, "ip": "10.0.2.15", "ssh_host": "127.0.0.1", "ssh_port": "40022"}
    assert loopback_forwarded(access) and not loopback_forwarded(ACCESS)
    argv = forward_argv(access, 9000, 8000)
    assert argv[argv.index("-L") + 1] == "127.0.0.1:9000:10.0.2.15:8000"
    assert "-N" in argv and "ExitOnForwardFailure=yes" in options(argv)
    assert argv[-1] == "root@127.0.0.1"
