"""Holds many idle Veltix connections open, for libveltix's server tests.

Usage: python idle_peers.py --port N --count N
Opens `count` connections to 127.0.0.1:port, completes the handshake on each
(hello written at once, then the server's hello and ack read), prints
"READY <count>" and keeps every connection open and silent until stdin
closes. Raw sockets: the reference client would start threads per
connection, which is not what an idle connection costs a server.
"""

import argparse
import json
import socket
import struct
import sys


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed during the handshake")
        data += chunk
    return data


def read_handshake_message(sock):
    (length,) = struct.unpack(">H", read_exact(sock, 2))
    return json.loads(read_exact(sock, length))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()

    body = json.dumps({"v": "idle-peer", "pv": "1.0", "meta": {}}).encode()
    hello = struct.pack(">H", len(body)) + body
    sockets = []
    for _ in range(args.count):
        sock = socket.create_connection(("127.0.0.1", args.port))
        sock.sendall(hello)
        sockets.append(sock)
    for sock in sockets:
        greeting = read_handshake_message(sock)
        ack = read_handshake_message(sock)
        if greeting.get("pv") != "1.0" or ack != {"result": "ok"}:
            raise SystemExit(f"bad handshake: {greeting} {ack}")
    print(f"READY {len(sockets)}", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
