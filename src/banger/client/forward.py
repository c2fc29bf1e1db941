"""`banger vm forward`: a guest's TCP port on this machine's loopback.

With a local daemon the guest's address is on this host's bridge: a small relay accepts on
127.0.0.1 and connects there. With a remote one, `ssh -L` through the remote host does it
(its sshd connects to the guest on that host's bridge)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading

from banger.client.remote import ssh_command

TYPE_CHECKING = False  # not typing's: see banger.core.xdg
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from banger.client import Client
    from banger.core.remote import RemoteHost


def forward_through_host(client: Client, local_port: int, guest_ip: str, guest_port: int) -> int:
    """`forward_over_ssh` through the client's remote host."""
    assert client.remote is not None
    return forward_over_ssh(client._env, client.remote, local_port, guest_ip, guest_port)


def forward_over_ssh(
    env: Mapping[str, str], remote: RemoteHost, local_port: int, guest_ip: str,
    guest_port: int,
) -> int:
    """Until interrupted; ssh's exit status."""
    argv = [
        *ssh_command(env), "-N", "-o", "ExitOnForwardFailure=yes",
        "-o", "ServerAliveInterval=30",
        "-L", f"127.0.0.1:{local_port}:{guest_ip}:{guest_port}", *remote.ssh_args(),
    ]
    return subprocess.call(argv, env=dict(env))


def free_local_port() -> int:
    """A port free on 127.0.0.1 now, for a program that cannot be asked for any (ssh -L)."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port: int = probe.getsockname()[1]
    return port


def relay_forever(
    local_port: int, guest_ip: str, guest_port: int,
    on_listening: Callable[[int], None] = lambda _: None,
) -> None:
    """Accept on 127.0.0.1:`local_port` (0: any free port) until interrupted."""
    server = socket.create_server(("127.0.0.1", local_port))
    on_listening(server.getsockname()[1])
    with server:
        while True:
            conn, _ = server.accept()
            threading.Thread(target=_pair, args=(conn, guest_ip, guest_port), daemon=True).start()


def _pair(conn: socket.socket, ip: str, port: int) -> None:
    try:
        upstream = socket.create_connection((ip, port), timeout=10)
    except OSError:
        conn.close()
        return
    upstream.settimeout(None)
    threading.Thread(target=_pump, args=(upstream, conn), daemon=True).start()
    _pump(conn, upstream)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
    with contextlib.suppress(OSError):
        source.shutdown(socket.SHUT_RD)
