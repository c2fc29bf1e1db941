from __future__ import annotations

import json
import socket
import sys
import threading
from pathlib import Path

from banger.client.forward import forward_over_ssh, relay_forever
from banger.core.remote import RemoteHost
from tests.support import fake_ssh


def test_the_relay_carries_both_ways() -> None:
    guest = socket.create_server(("127.0.0.1", 0))
    guest_port = guest.getsockname()[1]

    def echo_once() -> None:
        conn, _ = guest.accept()
        with conn:
            conn.sendall(conn.recv(100).upper())

    threading.Thread(target=echo_once, daemon=True).start()
    bound: list[int] = []
    ready = threading.Event()
    threading.Thread(
        target=relay_forever, args=(0, "127.0.0.1", guest_port),
        kwargs={"on_listening": lambda port: (bound.append(port), ready.set())}, daemon=True,
    ).start()
    assert ready.wait(5)
    with socket.create_connection(("127.0.0.1", bound[0]), timeout=5) as conn:
        conn.sendall(b"hello")
        assert conn.recv(100) == b"HELLO"
    guest.close()


def test_a_remote_guest_port_goes_through_ssh_local_forwarding(tmp_path: Path) -> None:
    env = {"BANGER_SSH_COMMAND": f"{sys.executable} {fake_ssh.__file__}",
           "FAKE_SSH_LOG": str(tmp_path / "log"), "FAKE_SSH_FAIL": "0"}
    assert forward_over_ssh(env, RemoteHost("devbox", "me"), 9000, "172.16.0.2", 8000) == 0
    argv = json.loads((tmp_path / "log").read_text())
    assert argv[argv.index("-L") + 1] == "127.0.0.1:9000:172.16.0.2:8000"
    assert argv[-2:] == ["--", "me@devbox"]
