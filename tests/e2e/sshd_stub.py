"""The remote host's sshd for test_remote.py, on asyncssh (a dependency already; this
machine has no OpenSSH server): public-key login with the test's key only, exec sessions
run through `sh -c` with the remote user's environment, and direct-tcpip channels (what
`ssh -W`, ProxyJump and `ssh -L` open) connected by the server. The client side is the
real OpenSSH client.

    python sshd_stub.py ADDRESS PORT HOST_KEY AUTHORIZED_KEYS ENV_JSON

It writes the host key's public half to HOST_KEY.pub and prints `ready` once listening."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import asyncssh


class _Server(asyncssh.SSHServer):
    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool:
        return True  # asyncssh opens the connection to dest_host:dest_port itself


async def _pump(reader: asyncio.StreamReader | asyncssh.SSHReader[bytes],
                write: object, close: object) -> None:
    while data := await reader.read(65536):
        write(data)  # type: ignore[operator]
    close()  # type: ignore[operator]


def _handler(env: dict[str, str]) -> object:
    async def handle(process: asyncssh.SSHServerProcess[bytes]) -> None:
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", process.command or "sh", env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdin and proc.stdout and proc.stderr

        def close_stdin() -> None:
            proc.stdin.close()  # type: ignore[union-attr]

        stdin = asyncio.ensure_future(_pump(process.stdin, proc.stdin.write, close_stdin))
        await asyncio.gather(
            _pump(proc.stdout, process.stdout.write, lambda: None),
            _pump(proc.stderr, process.stderr.write, lambda: None),
        )
        code = await proc.wait()
        stdin.cancel()
        process.exit(code)

    return handle


async def _serve(address: str, port: int, host_key: str, authorized: str,
                 env: dict[str, str]) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(host_key)
    key.write_public_key(host_key + ".pub")
    await asyncssh.create_server(
        _Server, address, port, server_host_keys=[host_key],
        authorized_client_keys=authorized, process_factory=_handler(env), encoding=None,
        allow_pty=False, agent_forwarding=False, x11_forwarding=False,
    )
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    address, port, host_key, authorized, env_json = sys.argv[1:6]
    asyncio.run(_serve(address, int(port), host_key, authorized,
                       {**os.environ, **json.loads(env_json)}))
