"""The reference veltix 3.3.0 server, scripted for libveltix's tests.

Usage: python ref_server.py --port N [--max-connection N]
Prints "READY <port>" once listening and runs until stdin closes (or, with
--forever, until it is killed). Message types (all registered, as the reference drops unknown ones):

  200 ECHO       replies with the same payload, type and request id
  201 SLOW_ECHO  payload "<ms>:<text>": replies after <ms> milliseconds
  202 BROADCAST  broadcasts the payload to every client as type 203
  210 CMD        JSON command, see on_cmd; results come back as type 211
  212 ASK        sent by the server with send_and_wait; clients answer 213
  220 COUNT      counted and fingerprinted (the "stats" command returns
                 {"count", "sum"}: the sum mod 2**64 of fingerprint())
"""

import argparse
import json
import socket
import sys
import threading
import time
import zlib

from veltix import MessageType, Request, Server, ServerConfig

ECHO = MessageType(200, "echo")
SLOW_ECHO = MessageType(201, "slow_echo")
BROADCAST = MessageType(202, "broadcast")
BROADCAST_OUT = MessageType(203, "broadcast_out")
CMD = MessageType(210, "cmd")
RESULT = MessageType(211, "result")
ASK = MessageType(212, "ask")
ANSWER = MessageType(213, "answer")
COUNT = MessageType(220, "count")
# Types a C client may use in tests without a server-side meaning.
for code in range(230, 240):
    MessageType(code, f"free_{code}")


def fingerprint(content: bytes) -> int:
    """CRC-32 of the payload, combined with its length."""
    return zlib.crc32(content) * 2**20 + len(content)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-connection", type=int, default=-1)
    parser.add_argument("--forever", action="store_true",
                        help="run until killed instead of until stdin closes")
    args = parser.parse_args()

    server = Server(ServerConfig(host="127.0.0.1", port=args.port,
                                 max_connection=args.max_connection))
    stats_lock = threading.Lock()
    # Order-independent fingerprint: frames from concurrent senders may
    # arrive in any order, but each must arrive exactly once and intact.
    stats = {"count": 0, "sum": 0}

    def reply(client, request, type_, content):
        server.send(Request(type_, content, request_id=request.request_id), client)

    @server.route(ECHO)
    def on_echo(client, response):
        reply(client, response, ECHO, response.content)

    @server.route(SLOW_ECHO)
    def on_slow_echo(client, response):
        delay, _, text = response.content.partition(b":")
        time.sleep(int(delay) / 1000)
        reply(client, response, SLOW_ECHO, text)

    @server.route(BROADCAST)
    def on_broadcast(client, response):
        server.broadcast(Request(BROADCAST_OUT, response.content))

    @server.route(COUNT)
    def on_count(client, response):
        with stats_lock:
            stats["count"] += 1
            stats["sum"] = (stats["sum"] + fingerprint(response.content)) % 2**64

    def in_thread(func):
        threading.Thread(target=func, daemon=True).start()

    @server.route(CMD)
    def on_cmd(client, response):
        cmd = json.loads(response.content)
        name = cmd["cmd"]
        if name == "ping_me":
            def ping():
                rtt = server.ping_client(client, timeout=5.0)
                server.send(Request(RESULT, json={"rtt": rtt}), client)
            in_thread(ping)
        elif name == "ask":
            def ask():
                answer = server.send_and_wait(Request(ASK, cmd["text"].encode()), client,
                                              timeout=5.0)
                result = None if answer is None else {
                    "type": answer.type.code, "text": answer.content.decode()}
                server.send(Request(RESULT, json={"answer": result}), client)
            in_thread(ask)
        elif name == "close_me":
            # Not server.close_client(client): in veltix 3.3.0 it closes the
            # fd from this thread while the selector thread may be handling
            # the same client, and the selector then dies on unregister(fd=-1)
            # (ValueError), leaving every later handshake unanswered. Shutting
            # the socket down makes the selector see EOF and close the client
            # on its own thread; the peer sees the same FIN.
            with socket.fromfd(client.conn.fileno(), socket.AF_INET, socket.SOCK_STREAM) as dup:
                dup.shutdown(socket.SHUT_RDWR)
        elif name == "stats":
            with stats_lock:
                result = {"count": stats["count"], "sum": stats["sum"]}
            reply(client, response, RESULT, json.dumps(result).encode())
        elif name == "burst":
            for i in range(cmd["n"]):
                server.send(Request(BROADCAST_OUT, str(i).encode()), client)

    server.start()
    print(f"READY {args.port}", flush=True)
    try:
        if args.forever:
            threading.Event().wait()
        else:
            sys.stdin.read()
    finally:
        server.close_all()


if __name__ == "__main__":
    main()
