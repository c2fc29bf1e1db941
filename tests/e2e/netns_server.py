"""Listeners for the network containment test, run inside a namespace the test made: TCP
ports that greet, UDP ports that log, and a tiny DNS server with fixed A records. Every
packet that arrives is one line in the log file, so the test can assert on what a target saw.

    netns_server.py LOG [--tcp ADDR:PORT]... [--udp ADDR:PORT]... [--dns ADDR NAME=IP,...]
"""

from __future__ import annotations

import selectors
import socket
import struct
import sys
from typing import TextIO


def _name(packet: bytes) -> tuple[str, int]:
    labels, offset = [], 12
    while packet[offset]:
        length = packet[offset]
        labels.append(packet[offset + 1:offset + 1 + length].decode("ascii", "replace"))
        offset += length + 1
    return ".".join(labels).lower(), offset + 5


def _dns_answer(packet: bytes, records: dict[str, str]) -> tuple[str, bytes]:
    name, end = _name(packet)
    ident = packet[:2]
    question = packet[12:end]
    address = records.get(name)
    if address is None:
        return name, ident + struct.pack("!HHHHH", 0x8183, 1, 0, 0, 0) + question
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + socket.inet_aton(address)
    return name, ident + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0) + question + answer


def main(argv: list[str]) -> None:
    with open(argv[0], "a", buffering=1) as log:
        serve(argv[1:], log)


def serve(argv: list[str], log: TextIO) -> None:
    selector = selectors.DefaultSelector()
    records: dict[str, str] = {}
    args = iter(argv)
    for flag in args:
        if flag == "--dns":
            address = next(args)
            for item in next(args).split(","):
                name, ip = item.split("=", 1)
                records[name] = ip
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((address, 53))
            selector.register(sock, selectors.EVENT_READ, "dns")
            continue
        host, port = next(args).rsplit(":", 1)
        kind = socket.SOCK_STREAM if flag == "--tcp" else socket.SOCK_DGRAM
        sock = socket.socket(socket.AF_INET, kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        if kind == socket.SOCK_STREAM:
            sock.listen(16)
        selector.register(sock, selectors.EVENT_READ, flag[2:])
    print("ready", file=log)
    while True:
        for key, _ in selector.select():
            sock = key.fileobj  # type: ignore[assignment]
            if key.data == "tcp":
                conn, peer = sock.accept()
                local = conn.getsockname()
                print(f"tcp {peer[0]} -> {local[0]}:{local[1]}", file=log)
                conn.sendall(f"hello from {local[0]}\n".encode())
                conn.close()
            elif key.data == "udp":
                data, peer = sock.recvfrom(2048)
                print(f"udp {peer[0]} {data.decode('ascii', 'replace')}", file=log)
            else:
                data, peer = sock.recvfrom(2048)
                name, response = _dns_answer(data, records)
                print(f"dns {peer[0]} {name}", file=log)
                sock.sendto(response, peer)


if __name__ == "__main__":
    main(sys.argv[1:])
