"""Drives the cookbook's graceful_server: SIGTERM with reference clients connected.

Usage: python graceful_driver.py <graceful_server binary>

Starts the server on a free port, connects two reference veltix 3.3.0
clients (tests/support/ref_client.py), checks that it echoes, sends it
SIGTERM, and checks that each client got the going-away broadcast (type
230) and was disconnected, and that the server exited 0 within 5 s.
Prints "graceful: ok" on success; exits 1 with what went wrong otherwise.
"""

import json
import pathlib
import queue
import signal
import subprocess
import sys
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
GOING_AWAY = 230


def fail(what: str) -> None:
    print(f"graceful: {what}", file=sys.stderr)
    sys.exit(1)


class ReferenceClient:
    """A ref_client.py process and the JSON lines it prints."""

    def __init__(self, port: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "ref_client.py"), "--port", str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            if line.startswith("{"):
                self.lines.put(json.loads(line))

    def command(self, **fields) -> None:
        self.process.stdin.write(json.dumps(fields) + "\n")
        self.process.stdin.flush()

    def wait_for(self, test, what: str, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if test(line):
                return line
        fail(f"no {what} within {timeout} s")

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=10)


def main() -> None:
    server = subprocess.Popen([sys.argv[1], "0"], stdout=subprocess.PIPE, text=True)
    first = server.stdout.readline()
    if not first.startswith("listening on 127.0.0.1:"):
        fail(f"the server said {first!r}")
    port = int(first.rsplit(":", 1)[1])
    clients = [ReferenceClient(port) for _ in range(2)]
    for client in clients:
        client.command(op="connect")
        client.wait_for(lambda line: line.get("op") == "connect" and line.get("ok"), "connect")
        client.command(op="request", type=200, text="before")
        reply = client.wait_for(lambda line: line.get("op") == "request", "echo")
        if not reply.get("reply") or reply["reply"]["text"] != "before":
            fail(f"echo: {reply}")
    server.send_signal(signal.SIGTERM)
    try:
        status = server.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.kill()
        fail("the server did not exit within 5 s of SIGTERM")
    output = server.stdout.read()
    if status != 0 or "told 2 clients; bye" not in output:
        fail(f"exit status {status}, output {output!r}")
    for client in clients:
        # The reference runs its callbacks on a thread pool: the message
        # and the disconnection may be reported in either order.
        seen = []
        client.wait_for(lambda line: seen.append(line) or {"recv", "disconnect"} <= {
            event.get("event") for event in seen}, "going-away message and disconnect")
        told = next(line for line in seen if line.get("event") == "recv")
        if told.get("type") != GOING_AWAY or told.get("text") != "server shutting down":
            fail(f"the client got {told}")
        client.close()
    print("graceful: ok (2 clients told, server exited 0)")


if __name__ == "__main__":
    main()
