"""The reference veltix 3.3.0 client, driven line by line by libveltix's tests.

Usage: python ref_client.py --port N [--retry N] [--retry-delay S] [--max-workers N]

Reads one JSON command per line on stdin and answers each with one JSON line
on stdout; callbacks print event lines as they happen (both kinds share
stdout, each line written whole). Commands and answers:

  {"op": "connect"}                        -> {"op": "connect", "ok": bool}
        (with "error" when connect() raised, as it does on server_full)
  {"op": "send", "type": T, "text": S}     -> {"op": "send", "ok": bool}
  {"op": "request", "type": T, "text": S}  -> {"op": "request", "reply": R}
        R is {"type", "id", "text"} or null on timeout (2 s)
  {"op": "ping"}                           -> {"op": "ping", "rtt": ms | null}
  {"op": "disconnect"}                     -> {"op": "disconnect", "ok": bool}

Events: {"event": "connect"}, {"event": "recv", "route": bool, "type", "id",
"text"}, {"event": "disconnect", "permanent", "attempt", "retry_max",
"reason"}. A message of type 212 (ASK) is answered automatically with type
213 carrying the same request id and the text "answer:<text>". Types 200-239
are registered, so the reference does not drop them.
"""

import argparse
import json
import sys
import threading

from veltix import Client, ClientConfig, MessageType, Request

TYPES = {code: MessageType(code, f"t{code}") for code in range(200, 240)}
ASK, ANSWER, ROUTED = 212, 213, (203, 212)

out_lock = threading.Lock()


def emit(**fields):
    with out_lock:
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()


def describe(response):
    return {"type": response.type.code, "id": response.request_id,
            "text": response.content.decode("utf-8", "replace")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--retry", type=int, default=0)
    parser.add_argument("--retry-delay", type=float, default=1.0)
    # The reference runs callbacks on a pool, so their order is not the
    # arrival order unless it has one worker.
    parser.add_argument("--max-workers", type=int, default=4)
    args = parser.parse_args()

    client = Client(ClientConfig(server_addr="127.0.0.1", port=args.port,
                                 retry=args.retry, retry_delay=args.retry_delay,
                                 max_workers=args.max_workers))

    def on_routed(response):
        emit(event="recv", route=True, **describe(response))
        if response.type.code == ASK:
            client.send(Request(TYPES[ANSWER], b"answer:" + response.content,
                                request_id=response.request_id))

    for code in ROUTED:
        client.route(TYPES[code])(on_routed)
    client.on_recv(lambda response: emit(event="recv", route=False, **describe(response)))
    client.on_connect(lambda: emit(event="connect"))
    client.on_disconnect(lambda state: emit(
        event="disconnect", permanent=state.permanent, attempt=state.attempt,
        retry_max=state.retry_max, reason=state.reason.name))

    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        if op == "connect":
            try:
                emit(op=op, ok=bool(client.connect()))
            except Exception as error:  # the reference raises on server_full
                emit(op=op, ok=False, error=f"{type(error).__name__}: {error}")
        elif op == "send":
            request = Request(TYPES[command["type"]], command["text"].encode())
            emit(op=op, ok=bool(client.send(request)))
        elif op == "request":
            request = Request(TYPES[command["type"]], command["text"].encode())
            reply = client.send_and_wait(request, timeout=2.0)
            emit(op=op, reply=describe(reply) if reply is not None else None)
        elif op == "ping":
            emit(op=op, rtt=client.ping_server(timeout=2.0))
        elif op == "disconnect":
            emit(op=op, ok=bool(client.disconnect()))
        else:
            emit(op=op, error="unknown command")


if __name__ == "__main__":
    main()
