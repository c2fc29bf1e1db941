"""`banger vm ports`: which TCP/UDP sockets listen in a guest, by which process, and whether
the host reaches them as `<name>.vm:<port>`.

The guest runs `REPORT_SCRIPT` over ssh. Images with iproute2 (the default image) answer with
`ss -H -tulpn`; images without it (many OCI images) answer with the kernel's socket tables
(/proc/net/{tcp,tcp6,udp,udp6}), each process's name and an `ls -l` of every /proc/PID/fd,
which maps socket inodes to processes. Both answers parse into the same records here."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

REPORT_SCRIPT = """\
if command -v ss >/dev/null 2>&1; then
    echo @ss
    exec ss -H -tulpn
fi
echo @proc
for table in tcp tcp6 udp udp6; do
    echo "@$table"
    cat "/proc/net/$table" 2>/dev/null
done
echo @comm
for dir in /proc/[0-9]*; do
    { read -r name < "$dir/comm"; } 2>/dev/null && echo "${dir#/proc/} $name"
done
echo @fd
ls -l /proc/[0-9]*/fd 2>/dev/null
exit 0
"""

_TCP_LISTEN = "0A"
_UDP_UNCONNECTED = "07"  # TCP_CLOSE: bound and not connected, what `ss -l` lists for UDP
_WILDCARDS = ("*", "0.0.0.0", "::")
_SS_USER = re.compile(r'\("(.*?)",pid=(\d+),fd=\d+\)')


@dataclass(frozen=True)
class Process:
    name: str
    pid: int


@dataclass(frozen=True)
class ListeningSocket:
    proto: str  # "tcp" or "udp"
    address: str  # as bound: "0.0.0.0", "::", "127.0.0.1", "127.0.0.53%lo"; "*" = v4 and v6
    port: int
    ipv4: bool  # accepts IPv4 connections (the `.vm` name resolves to IPv4 only)
    processes: tuple[Process, ...] = ()


@dataclass(frozen=True)
class Port:
    """One row of `banger vm ports` (and one object of its --json)."""

    proto: str
    address: str
    port: int
    process: str  # "" when the guest would not say
    pids: list[int]
    reach: str  # "<name>.vm:<port>" when the host can connect to it, else ""


def parse_report(text: str) -> list[ListeningSocket]:
    """The guest's answer to REPORT_SCRIPT."""
    first, _, rest = text.partition("\n")
    if first.strip() == "@ss":
        return parse_ss(rest)
    if first.strip() == "@proc":
        return parse_proc(rest)
    raise ValueError(f"unexpected first line {first[:80]!r}")


def _split_endpoint(text: str) -> tuple[str, int] | None:
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not host:
        return None
    if host.startswith("[") and "]" in host:  # [::1], [fe80::1]%eth0
        inside, _, scope = host[1:].partition("]")
        host = inside + scope
    return host, int(port)


def _accepts_ipv4(host: str) -> bool:
    bare = host.partition("%")[0]
    return host == "*" or ":" not in bare or bare.lower().startswith("::ffff:")


def parse_ss(text: str) -> list[ListeningSocket]:
    """`ss -H -tulpn` lines: netid, state, queues, local and peer address, process list.
    ss shows a dual-stack wildcard as `*` and an IPv6-only one as `[::]`."""
    found = []
    for line in text.splitlines():
        fields = line.split(None, 6)
        if len(fields) < 6 or fields[0] not in ("tcp", "udp"):
            continue
        if fields[1] not in ("LISTEN", "UNCONN"):
            continue
        endpoint = _split_endpoint(fields[4])
        if endpoint is None:
            continue
        host, port = endpoint
        users = _SS_USER.findall(fields[6]) if len(fields) > 6 else []
        processes = tuple(dict.fromkeys(Process(name, int(pid)) for name, pid in users))
        found.append(ListeningSocket(fields[0], host, port, _accepts_ipv4(host), processes))
    return _sorted(found)


def _proc_address(text: str) -> str:
    """/proc/net hex: 32-bit words in host order (little-endian on x86)."""
    raw = bytes.fromhex(text)
    swapped = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    if len(swapped) == 4:
        return str(ipaddress.IPv4Address(swapped))
    address = ipaddress.IPv6Address(swapped)
    if address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"  # as ss writes it
    return str(address)


def _sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("@") and " " not in line:
            current = sections.setdefault(line[1:], [])
        else:
            current.append(line)
    return sections


def parse_proc(text: str) -> list[ListeningSocket]:
    """The fallback answer: socket tables, `PID NAME` lines, and `ls -l /proc/*/fd`."""
    sections = _sections(text)
    names: dict[int, str] = {}
    for line in sections.get("comm", []):
        pid, _, name = line.partition(" ")
        if pid.isdigit():
            names[int(pid)] = name
    owners: dict[str, list[int]] = {}
    owner: int | None = None
    for line in sections.get("fd", []):
        if line.startswith("/proc/") and line.endswith(":"):
            number = line[len("/proc/"):].split("/", 1)[0]
            owner = int(number) if number.isdigit() else None
        elif owner is not None and "-> socket:[" in line:
            inode = line.rsplit("socket:[", 1)[1].rstrip("]")
            owners.setdefault(inode, []).append(owner)
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        proto = table[:3]
        wanted = _TCP_LISTEN if proto == "tcp" else _UDP_UNCONNECTED
        for line in sections.get(table, [])[1:]:  # the first line is the header
            fields = line.split()
            if len(fields) < 10 or fields[3] != wanted:
                continue
            local, _, port_hex = fields[1].partition(":")
            try:
                host, port = _proc_address(local), int(port_hex, 16)
            except ValueError:
                continue
            # On Linux a socket bound to :: takes IPv4 too unless the program opted out,
            # which only ss can tell; the tables cannot.
            ipv4 = table in ("tcp", "udp") or host == "::" or host.startswith("::ffff:")
            processes = tuple(dict.fromkeys(
                Process(names.get(p, ""), p) for p in owners.get(fields[9], [])
            ))
            found.append(ListeningSocket(proto, host, port, ipv4, processes))
    return _sorted(found)


def _sorted(sockets: list[ListeningSocket]) -> list[ListeningSocket]:
    return sorted(sockets, key=lambda s: (s.proto, s.port, s.address))


def ports(
    sockets: list[ListeningSocket], *, vm: str, ip: str, forwarded: bool = False
) -> list[Port]:
    """The rows for `vm`, whose guest address is `ip`: `reach` is set for sockets the host
    can connect to (a wildcard or the guest's address, over IPv4). `forwarded`: the guest's
    address is not the host's to reach (user-mode networking), its TCP ports are reached
    through `banger vm forward`."""
    rows = []
    for s in sockets:
        reachable = s.ipv4 and (s.address in _WILDCARDS or s.address == ip)
        reach = f"{vm}.vm:{s.port}"
        if forwarded:
            reachable = reachable and s.proto.startswith("tcp")
            reach = f"banger vm forward {vm} {s.port}"
        rows.append(Port(
            proto=s.proto,
            address=s.address,
            port=s.port,
            process=", ".join(dict.fromkeys(p.name for p in s.processes if p.name)),
            pids=[p.pid for p in s.processes],
            reach=reach if reachable else "",
        ))
    return rows


PORT_HEADERS = ["PROTO", "ADDRESS", "PORT", "PROCESS", "PID", "REACH"]


def port_rows(rows: list[Port]) -> list[list[str]]:
    return [
        [r.proto, r.address, str(r.port), r.process or "-",
         ",".join(str(p) for p in r.pids) or "-", r.reach or "-"]
        for r in rows
    ]
