"""The host<->guest channel of warm templates: the guest agent baked into every image and the
line protocol it speaks over a virtio-serial port.

A template VM boots with ``banger.agent`` on its kernel command line and no per-VM identity:
no address, hostname, host keys or work disk. The agent answers the host's ``PING`` with
``READY`` once the boot has settled; the host then saves the paused VM (device state + its
memory file). Every VM restored from that template resumes inside the agent's read loop, and
the host sends one ``IDENTITY`` line: address, MAC, hostname, the wall clock and fresh host
randomness. The agent mounts the VM's own work disk at /root, runs the same identity step a
cold boot runs (banger-boot: host keys, machine-id, network), reseeds the kernel RNG, starts
sshd and answers ``OK`` (or ``ERR <why>``). Nothing here performs I/O (the agent's source is
read from banger's own package data, banger/guest/banger-agent.pl).
"""

from __future__ import annotations

from dataclasses import dataclass

from banger.core import agentframe
from banger.core.guest import AGENT_KERNEL_FLAG, SEED_DIR, WORK_DISK_LABEL
from banger.core.programs import guest_program

PORT_NAME = "org.banger.agent"
# Firecracker has no virtio-serial: there the agent listens on this vsock port.
VSOCK_PORT = 1024
AGENT_SCRIPT_PATH = "/usr/local/lib/banger/banger-agent"
AGENT_FAILED_SCRIPT_PATH = "/usr/local/lib/banger/banger-agent-failed"
AGENT_UNIT_NAME = "banger-agent.service"
# On the kernel command line of template VMs only: their agent applies an identity before
# it serves the exec channel (core/agentframe.py), which a cold boot's agent serves at once.
KERNEL_FLAG = AGENT_KERNEL_FLAG
# Bytes of host randomness each restored VM mixes into its kernel RNG before reseeding.
SEED_BYTES = 64

PING = "PING"
READY = "READY"
# The agent asks for the host's clock once its identity is applied; the host answers
# "TIME <ns since the epoch>".
TIME = "TIME"


@dataclass(frozen=True)
class Identity:
    """What makes a VM restored from a template a distinct machine (the rest of it, host
    keys, machine-id and authorized_keys, is staged on its work disk as for a cold boot)."""

    ip_cidr: str
    gateway: str
    dns: str
    hostname: str
    mac: str
    now_ns: int  # host wall clock, nanoseconds since the epoch
    seed: bytes  # fresh randomness for the guest's RNG


def identity_line(identity: Identity) -> str:
    """The one line the host sends; every value is a token without spaces (the hostname is
    a validated DNS label, the rest are addresses and hex)."""
    seconds, nanos = divmod(identity.now_ns, 1_000_000_000)
    fields = {
        "ip": identity.ip_cidr,
        "gw": identity.gateway,
        "dns": identity.dns,
        "hostname": identity.hostname,
        "mac": identity.mac,
        "time": f"{seconds}.{nanos:09d}",
        "seed": identity.seed.hex(),
    }
    for key, value in fields.items():
        if not value or any(c.isspace() for c in value) or "=" in value:
            raise ValueError(f"identity field {key}={value!r} is not a single token")
    return "IDENTITY " + " ".join(f"{key}={value}" for key, value in fields.items()) + "\n"


@dataclass(frozen=True)
class Reply:
    ok: bool
    detail: str


def time_line(now_ns: int) -> str:
    return f"{TIME} {now_ns}\n"


def parse_reply(line: str) -> Reply | None:
    """The agent's answer to IDENTITY, or None for other lines (late READYs to PINGs that
    were still queued in the template's port buffer when it was saved)."""
    text = line.strip()
    if text == "OK" or text.startswith("OK "):
        return Reply(True, text[3:])
    if text.startswith("ERR"):
        return Reply(False, text[4:] or "unknown error")
    return None


AGENT_SCRIPT = guest_program(
    "banger-agent.pl", FLAG=KERNEL_FLAG, PORT=PORT_NAME, LABEL=WORK_DISK_LABEL, SEED=SEED_DIR,
    VSOCK_PORT=VSOCK_PORT, PING=PING, READY=READY, TIME=TIME,
    MAX_PAYLOAD=agentframe.MAX_PAYLOAD, PROTOCOL=agentframe.PROTOCOL.decode(),
    **{f"T_{kind.name}": int(kind) for kind in agentframe.FrameType},
)

# What the script below writes to the port when the agent stopped, before the reason.
AGENT_STOPPED = "ERR banger-agent "


def agent_stopped(preamble: bytes) -> str | None:
    """Why the agent stopped, if the bytes it left on its port before any HELLO say so."""
    at = preamble.find(AGENT_STOPPED.encode())
    end = preamble.find(b"\n", at)
    if at < 0 or end < 0:
        return None
    return preamble[at + len(AGENT_STOPPED):end].decode(errors="replace")


# Exit status systemd gives a service whose program it could not execute.
EXIT_STATUS_EXEC = 203

# Run by systemd whenever the agent stops. Without it, an agent that cannot start (an image
# without perl) or dies leaves the host pinging until its timeout, with a template VM burning
# CPU meanwhile. Only the virtio-serial port is reachable from a shell; over vsock (Firecracker)
# the host still waits for its timeout.
AGENT_FAILED_SCRIPT = f"""\
#!/bin/sh
# banger-agent-failed: tell the host at once why banger-agent stopped (ExecStopPost).
[ "$SERVICE_RESULT" = success ] && exit 0
case "$EXIT_STATUS" in
{EXIT_STATUS_EXEC}) why="cannot start: the image has no /usr/bin/perl" ;;
*) why="stopped ($SERVICE_RESULT, exit status ${{EXIT_STATUS:-none}})" ;;
esac
port=/dev/virtio-ports/{PORT_NAME}
[ -e "$port" ] && echo "{AGENT_STOPPED}$why" > "$port"
exit 0
"""


def agent_unit(exec_start: str = AGENT_SCRIPT_PATH) -> str:
    """The agent's systemd unit; `exec_start` is the bundled perl's launcher line in an image
    without perl (core/perlkit.py)."""
    return f"""\
[Unit]
Description=banger agent: the host's exec channel, and per-VM identity after a restore
After=local-fs.target

[Service]
Type=simple
ExecStart={exec_start}
ExecStopPost={AGENT_FAILED_SCRIPT_PATH}
StandardOutput=journal

[Install]
WantedBy=multi-user.target
"""


AGENT_UNIT = agent_unit()
