# ruff: noqa: E501 - the samples are real command output, long lines and all
"""Parsing what guests report about their listening sockets: real `ss -H -tulpn` output and
the /proc fallback, both captured from one banger guest (Debian bookworm, iproute2 6.1)
running sshd, two http.servers (one on loopback), a UDP socket and an IPv6-only listener."""

from __future__ import annotations

import pytest

from banger.core.ports import (
    ListeningSocket,
    Port,
    Process,
    parse_proc,
    parse_report,
    parse_ss,
    port_rows,
    ports,
)
from tests.support.guest_reports import GUEST_SS

GUEST_PROC = """\
@proc
@tcp
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 13022 1 00000000601cad6e 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12961 1 000000007371a595 100 0 0 10 0
   2: 0100007F:0BB9 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1827 1 00000000933db1fb 100 0 0 10 0
   3: 020010AC:0016 010010AC:D770 01 00000000:00000000 02:000AFC35 00000000     0        0 13079 2 000000007e85bd01 20 4 28 10 -1
   4: 020010AC:0016 010010AC:D760 01 00000000:00000000 02:000AFBA3 00000000     0        0 1830 2 000000003de7e842 20 4 31 10 -1
@tcp6
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1B58 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1826 1 000000008f567255 100 0 0 10 0
   1: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12963 1 00000000d6b6b45d 100 0 0 10 0
@udp
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 1125: 00000000:14B4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 13019 2 00000000a40091ae 0
@udp6
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
@comm
1 systemd
111 kworker/0:1H-kblockd
330 sshd
349 python3
351 python3
353 python3
355 python3
@fd
/proc/330/fd:
total 0
lr-x------ 1 root root 64 Nov 26 21:15 0 -> /dev/null
lrwx------ 1 root root 64 Nov 26 21:15 1 -> socket:[12952]
lrwx------ 1 root root 64 Nov 26 21:15 2 -> socket:[12952]
lrwx------ 1 root root 64 Nov 26 21:15 3 -> socket:[12961]
lrwx------ 1 root root 64 Nov 26 21:15 4 -> socket:[12963]

/proc/349/fd:
total 0
lr-x------ 1 root root 64 Nov 26 21:15 0 -> pipe:[1823]
l-wx------ 1 root root 64 Nov 26 21:15 1 -> /dev/null
l-wx------ 1 root root 64 Nov 26 21:15 2 -> /dev/null
lrwx------ 1 root root 64 Nov 26 21:15 3 -> socket:[13022]

/proc/351/fd:
total 0
lr-x------ 1 root root 64 Nov 26 21:15 0 -> pipe:[1823]
l-wx------ 1 root root 64 Nov 26 21:15 1 -> /dev/null
l-wx------ 1 root root 64 Nov 26 21:15 2 -> /dev/null
lrwx------ 1 root root 64 Nov 26 21:15 3 -> socket:[1827]

/proc/353/fd:
total 0
lr-x------ 1 root root 64 Nov 26 21:15 0 -> pipe:[1823]
l-wx------ 1 root root 64 Nov 26 21:15 1 -> /dev/null
l-wx------ 1 root root 64 Nov 26 21:15 2 -> /dev/null
lrwx------ 1 root root 64 Nov 26 21:15 3 -> socket:[13019]

/proc/355/fd:
total 0
lr-x------ 1 root root 64 Nov 26 21:15 0 -> pipe:[1823]
l-wx------ 1 root root 64 Nov 26 21:15 1 -> /dev/null
l-wx------ 1 root root 64 Nov 26 21:15 2 -> /dev/null
lrwx------ 1 root root 64 Nov 26 21:15 3 -> socket:[1826]
"""


def sock(
    proto: str, address: str, port: int, ipv4: bool, *procs: tuple[str, int]
) -> ListeningSocket:
    return ListeningSocket(proto, address, port, ipv4, tuple(Process(n, p) for n, p in procs))


def test_ss_report() -> None:
    assert parse_report(GUEST_SS) == [
        sock("tcp", "0.0.0.0", 22, True, ("sshd", 330)),
        sock("tcp", "::", 22, False, ("sshd", 330)),
        sock("tcp", "0.0.0.0", 3000, True, ("python3", 349)),
        sock("tcp", "127.0.0.1", 3001, True, ("python3", 351)),
        sock("tcp", "::", 7000, False, ("python3", 355)),
        sock("udp", "0.0.0.0", 5300, True, ("python3", 353)),
    ]


def test_proc_report_of_the_same_guest() -> None:
    # The tables cannot tell an IPv6-only socket (7000, sshd's second one) from a dual-stack
    # one; established connections (sshd to the host) are not listeners.
    assert parse_report(GUEST_PROC) == [
        sock("tcp", "0.0.0.0", 22, True, ("sshd", 330)),
        sock("tcp", "::", 22, True, ("sshd", 330)),
        sock("tcp", "0.0.0.0", 3000, True, ("python3", 349)),
        sock("tcp", "127.0.0.1", 3001, True, ("python3", 351)),
        sock("tcp", "::", 7000, True, ("python3", 355)),
        sock("udp", "0.0.0.0", 5300, True, ("python3", 353)),
    ]


def test_ss_address_forms() -> None:
    # Dual-stack wildcard "*", loopback v6, interface scopes, a socket shared by several
    # processes, a process name with a blank, one whose owner ss cannot see.
    text = "\n".join([
        'udp UNCONN 0      0        0.0.0.0:5353 0.0.0.0:* users:(("python3",pid=31278,fd=3))',
        'udp UNCONN 0      0          [::1]:6000    [::]:* users:(("python3",pid=31278,fd=4))',
        'udp UNCONN 0      0      127.0.0.53%lo:53 0.0.0.0:* users:(("systemd-resolve",pid=411,fd=13))',
        'udp UNCONN 0      0      [fe80::5054:ff:fe12:3456]%eth0:546 [::]:* users:(("dhclient",pid=600,fd=5))',
        'tcp LISTEN 0      5              *:3000       *:* users:(("python3",pid=31276,fd=3))',
        'tcp LISTEN 0      511            *:80         *:* users:(("nginx",pid=701,fd=6),("nginx",pid=700,fd=6),("nginx",pid=701,fd=6))',
        'tcp LISTEN 0      4096   [::ffff:127.0.0.1]:8443 *:* users:(("tmux: server",pid=9,fd=7))',
        "tcp LISTEN 0      128    0.0.0.0:2024 0.0.0.0:*",
        'tcp ESTAB  0      0      10.0.0.2:22 10.0.0.1:5000 users:(("sshd",pid=1,fd=3))',
        "u_str LISTEN 0 4096 /run/x.sock 123 * 0",
        "",
    ])
    found = parse_ss(text)
    assert [(s.proto, s.address, s.port, s.ipv4) for s in found] == [
        ("tcp", "*", 80, True),
        ("tcp", "0.0.0.0", 2024, True),
        ("tcp", "*", 3000, True),
        ("tcp", "::ffff:127.0.0.1", 8443, True),
        ("udp", "127.0.0.53%lo", 53, True),
        ("udp", "fe80::5054:ff:fe12:3456%eth0", 546, False),
        ("udp", "0.0.0.0", 5353, True),
        ("udp", "::1", 6000, False),
    ]
    assert found[0].processes == (Process("nginx", 701), Process("nginx", 700))
    assert found[1].processes == ()
    assert found[3].processes == (Process("tmux: server", 9),)


def test_ss_header_and_garbage_lines_are_skipped() -> None:
    text = (
        "Netid State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
        "tcp   LISTEN 0      128          0.0.0.0:22        0.0.0.0:*\n"
        "tcp   LISTEN 0      128          0.0.0.0:*         0.0.0.0:*\n"
        "nonsense\n"
    )
    assert parse_ss(text) == [sock("tcp", "0.0.0.0", 22, True)]


def test_proc_ipv6_addresses_are_decoded_word_by_word() -> None:
    header = "  sl  local_address remote_address st tx_queue rx_queue tr tm->when retrnsmt uid timeout inode"
    text = "\n".join([
        "@tcp6", header,
        "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 77 1 0 100 0 0 10 0",
        "   1: 0000000000000000FFFF00000100007F:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 78 1 0 100 0 0 10 0",
        "   2: 000080FE00000000FF005450563412FE:1F92 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 79 1 0 100 0 0 10 0",
        "@udp6", header,
        "  10: 00000000000000000000000000000000:0035 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 80 2 0 0",
        "  11: 00000000000000000000000000000000:0036 00000000000000000000000000000000:0000 01 00000000:00000000 00:00000000 00000000 0 0 81 2 0 0",
    ])
    assert [(s.proto, s.address, s.port, s.ipv4, s.processes) for s in parse_proc(text)] == [
        ("tcp", "::1", 8080, False, ()),
        ("tcp", "::ffff:127.0.0.1", 8081, True, ()),
        ("tcp", "fe80::5054:ff:fe12:3456", 8082, False, ()),
        ("udp", "::", 53, True, ()),  # the connected UDP socket (state 01) is not listed
    ]


def test_an_unexpected_answer_is_an_error() -> None:
    with pytest.raises(ValueError):
        parse_report("sh: 1: ss: Permission denied\n")


def test_rows_say_how_the_host_reaches_each_socket() -> None:
    rows = ports(parse_report(GUEST_SS), vm="box", ip="172.16.0.2")
    assert [(r.proto, r.port, r.reach) for r in rows] == [
        ("tcp", 22, "box.vm:22"),
        ("tcp", 22, ""),  # IPv6 only, and the .vm name is IPv4
        ("tcp", 3000, "box.vm:3000"),
        ("tcp", 3001, ""),  # loopback
        ("tcp", 7000, ""),
        ("udp", 5300, "box.vm:5300"),
    ]
    assert rows[0] == Port("tcp", "0.0.0.0", 22, "sshd", [330], "box.vm:22")


def test_a_socket_bound_to_the_guest_address_is_reachable() -> None:
    bound = [sock("tcp", "172.16.0.2", 8000, True, ("node", 5)),
             sock("tcp", "10.0.0.9", 8001, True)]
    assert [r.reach for r in ports(bound, vm="box", ip="172.16.0.2")] == ["box.vm:8000", ""]


def test_under_user_mode_networking_tcp_ports_are_reached_through_vm_forward() -> None:
    rows = ports(parse_report(GUEST_SS), vm="box", ip="10.0.2.15", forwarded=True)
    assert [(r.proto, r.port, r.reach) for r in rows] == [
        ("tcp", 22, "banger vm forward box 22"),
        ("tcp", 22, ""),
        ("tcp", 3000, "banger vm forward box 3000"),
        ("tcp", 3001, ""),
        ("tcp", 7000, ""),
        ("udp", 5300, ""),  # ssh forwards TCP only
    ]


def test_table_rows() -> None:
    rows = ports(
        [sock("tcp", "*", 80, True, ("nginx", 701), ("nginx", 700), ("systemd", 1)),
         sock("udp", "127.0.0.1", 53, True)],
        vm="box", ip="172.16.0.2",
    )
    assert port_rows(rows) == [
        ["tcp", "*", "80", "nginx, systemd", "701,700,1", "box.vm:80"],
        ["udp", "127.0.0.1", "53", "-", "-", "-"],
    ]
