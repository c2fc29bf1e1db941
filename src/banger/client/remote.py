"""Choosing the daemon (local, or a remote one through ssh) and the ssh options every
connection to a remote host shares.

All connections to one remote host share one ssh connection (OpenSSH's ControlMaster, kept
60 s after the last use): a request then costs a new session on it, not a new handshake.
BANGER_SSH_COMMAND replaces `ssh` (say, `ssh -F ~/.ssh/work_config`), as GIT_SSH_COMMAND
does for git."""

from __future__ import annotations

import os
import posixpath

from banger.core.xdg import CONTEXTS_FILE, banger_dirs

TYPE_CHECKING = False  # not typing's: see banger.core.xdg
if TYPE_CHECKING:
    from collections.abc import Mapping

    from banger.client.transport import Transport
    from banger.core.remote import Contexts, RemoteHost

CONTROL_PERSIST = "60"


def contexts_path(env: Mapping[str, str]) -> str:
    return posixpath.join(banger_dirs(env)[0], CONTEXTS_FILE)


def choose_remote(
    env: Mapping[str, str], host: str | None = None, context: str | None = None,
) -> RemoteHost | None:
    """The remote daemon that applies (None: the local one); see banger.core.remote."""
    if not (host or context or env.get("BANGER_HOST") or env.get("BANGER_CONTEXT")
            or os.path.exists(contexts_path(env))):
        return None  # the common case, without parsing anything
    from banger.core.remote import choose_host, parse_host

    url = choose_host(
        flag_host=host, flag_context=context, env=env, contexts=load_contexts(env)
    )
    return parse_host(url) if url else None


def load_contexts(env: Mapping[str, str]) -> Contexts:
    from banger.core.remote import Contexts, parse_contexts

    try:
        with open(contexts_path(env), "rb") as f:
            import tomllib

            try:
                return parse_contexts(tomllib.load(f))
            except tomllib.TOMLDecodeError as exc:
                from banger.core.errors import InvalidInput

                raise InvalidInput(
                    f"{contexts_path(env)} is not valid TOML: {exc}",
                    hint="fix it by hand, or remove it and add the contexts again",
                ) from None
    except FileNotFoundError:
        return Contexts()


def save_contexts(env: Mapping[str, str], contexts: Contexts) -> None:
    from banger.core.remote import render_contexts

    path = contexts_path(env)
    os.makedirs(posixpath.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(render_contexts(contexts))
    os.replace(tmp, path)


def ssh_command(env: Mapping[str, str]) -> list[str]:
    import shlex

    return shlex.split(env.get("BANGER_SSH_COMMAND", "")) or ["ssh"]


def control_path(env: Mapping[str, str], remote: RemoteHost) -> str:
    """The shared connection's socket: short (sun_path is 104 bytes on macOS) and free of
    `%`, which ssh would expand inside a ProxyCommand."""
    import hashlib

    runtime = banger_dirs(env)[3]
    os.makedirs(runtime, mode=0o700, exist_ok=True)
    digest = hashlib.sha256(remote.url.encode()).hexdigest()[:16]
    return posixpath.join(runtime, f"ssh-{digest}")


def shared_ssh(env: Mapping[str, str], remote: RemoteHost) -> list[str]:
    """`ssh` with the shared connection's options; the destination comes after."""
    return [
        *ssh_command(env),
        "-o", "ControlMaster=auto",
        "-o", f"ControlPath={control_path(env, remote)}",
        "-o", f"ControlPersist={CONTROL_PERSIST}",
        "-o", "ServerAliveInterval=30",
    ]


def ssh_transport(remote: RemoteHost, env: Mapping[str, str], *, start: bool) -> Transport:
    from banger.client.sshtransport import SSHTransport

    return SSHTransport(remote, env, start=start)
