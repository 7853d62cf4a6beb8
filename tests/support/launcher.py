"""Runs the reference scripts for test programs that cannot start them.

A Windows test program under Wine cannot pipe to a Linux process (Wine
gives it no handle to wait on or read from), so scripts/cross.sh starts
this launcher on the Linux side and points the tests at it
(VELTIX_TEST_LAUNCHER=127.0.0.1:<port>). Each connection runs one script:

  -> one JSON line: {"script": "ref_server.py", "args": ["--port", "1234"]}
  then the connection is the script's stdin and stdout. When the test
  closes its sending side, the script is killed; once it has exited, the
  launcher closes the connection, so the test knows it is gone.

Usage: python launcher.py --port N   (prints "READY <port>", listens on
127.0.0.1 only, runs until killed)
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = {"ref_server.py", "ref_client.py"}


def relay_output(process, connection):
    for chunk in iter(lambda: process.stdout.read1(65536), b""):
        try:
            connection.sendall(chunk)
        except OSError:
            break


def run_one(connection):
    with connection:
        reader = connection.makefile("rb")
        request = json.loads(reader.readline())
        if request["script"] not in SCRIPTS:
            return
        process = subprocess.Popen(
            [sys.executable, os.path.join(HERE, request["script"])]
            + [str(arg) for arg in request["args"]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        output = threading.Thread(target=relay_output, args=(process, connection))
        output.start()
        for line in reader:
            try:
                process.stdin.write(line)
                process.stdin.flush()
            except OSError:
                break
        process.kill()
        process.wait()
        output.join()
        connection.shutdown(socket.SHUT_RDWR)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    listener = socket.create_server(("127.0.0.1", port))
    print(f"READY {port}", flush=True)
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=run_one, args=(connection,), daemon=True).start()


if __name__ == "__main__":
    main()
