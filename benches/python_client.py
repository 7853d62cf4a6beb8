"""The Python reference client (veltix 3.3.0) running the same scenarios as
benches/client.rs, against the echo peer on the given port.

Usage: python benches/python_client.py PORT
       python benches/python_client.py PORT round-trips COUNT
           (prints "round-trips:" and the mean, p50 and p99 in microseconds of COUNT
           sequential 64-byte send_and_wait calls)
"""

import sys
import threading
import time

from veltix import Client, ClientConfig, MessageType, Request

ECHO = MessageType(200, "echo")
COUNTED = MessageType(220, "counted")
COUNT_QUERY = MessageType(221, "count_query")
ROUTED = MessageType(230, "routed")  # echoed by the peer into a route


def counted(client: Client) -> int:
    return int.from_bytes(client.send_and_wait(Request(COUNT_QUERY, b""), timeout=5).content, "big")


def print_latencies(what: str, samples: list) -> None:
    """Rate, p50 and p99 of sequential round trips, as benches/client.rs prints them."""
    count = len(samples)
    samples = sorted(samples)
    print(f"{what:<40} {count / sum(samples):>9.0f} /s  "
          f"p50 {samples[count // 2] * 1e6:>6.1f} us  p99 {samples[count * 99 // 100] * 1e6:>6.1f} us")


def send_and_wait_times(client: Client, count: int) -> list:
    """The times of COUNT sequential 64-byte send_and_wait round trips."""
    payload = bytes([7]) * 64
    samples = []
    for _ in range(count):
        t = time.perf_counter()
        assert client.send_and_wait(Request(ECHO, payload), timeout=5) is not None
        samples.append(time.perf_counter() - t)
    return samples


def round_trips(client: Client, count: int) -> None:
    """Prints the mean, p50 and p99 of COUNT send_and_wait round trips, in us."""
    samples = sorted(send_and_wait_times(client, count))
    print(f"round-trips: {sum(samples) / count * 1e6:.2f} {samples[count // 2] * 1e6:.2f} "
          f"{samples[count * 99 // 100] * 1e6:.2f}")


def main() -> None:
    client = Client(ClientConfig(server_addr="127.0.0.1", port=int(sys.argv[1])))
    assert client.connect()
    if sys.argv[2:3] == ["round-trips"]:
        round_trips(client, int(sys.argv[3]))
        client.disconnect()
        return

    count = 2000
    payload = bytes([7]) * 64
    print_latencies("request/response 64 B (send_and_wait)", send_and_wait_times(client, count))

    # Echo into a route callback: the sender waits for the callback (the
    # reference runs it on its worker pool; it has no dispatch mode).
    arrived = threading.Semaphore(0)
    client.route(ROUTED)(lambda response: arrived.release())
    samples = []
    for _ in range(count):
        t = time.perf_counter()
        client.send(Request(ROUTED, payload))
        assert arrived.acquire(timeout=5)
        samples.append(time.perf_counter() - t)
    print_latencies("echo into a route, worker pool", samples)

    threads, per_thread = 4, 5000
    before = counted(client)
    start = time.perf_counter()

    def sender() -> None:
        for _ in range(per_thread):
            client.send(Request(COUNTED, bytes([1]) * 64))

    workers = [threading.Thread(target=sender) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    while counted(client) < before + threads * per_thread:
        pass
    elapsed = time.perf_counter() - start
    print(f"one-way 64 B, {threads} threads: {threads * per_thread / elapsed:>9.0f} msg/s"
          f"  ({threads * per_thread} messages in {elapsed:.2f} s)")

    big = bytes([3]) * (1024 * 1024)
    rounds = 10
    start = time.perf_counter()
    for _ in range(rounds):
        reply = client.send_and_wait(Request(ECHO, big), timeout=10)
        assert reply is not None and len(reply.content) == len(big)
    elapsed = time.perf_counter() - start
    print(f"1 MiB round trips:       {rounds / elapsed:>9.0f} MiB/s each way  ({rounds} in {elapsed:.2f} s)")
    client.disconnect()


if __name__ == "__main__":
    main()
