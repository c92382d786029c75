"""A cheap HTTP backend for benchmarks: one process, one asyncio loop, many listeners.

It speaks the part of the seed protocol a sync task needs and costs little CPU per
call (no JSON parsing of the request, a canned answer), so that what a benchmark
measures is the dispatcher, not the backend:

  POST /predict  -> 200 {"server": <name>, "own_us": <microseconds it held the call>}
                    after the listener's delay (0: at once; 1.0: one second, the
                    "slow backend" of bench part 2). ``own_us`` is the backend's own
                    time, which bench part 3 subtracts from the round trip.
  GET  /health   -> 200 {"status": "healthy"}
  GET  /stats    -> 200 {"calls", "in_flight", "max_in_flight"} of this listener, and
                    the same over all listeners of the process ("process_*").

  python -m bench.fast_backend --listen fast-1:41001:0 --listen slow-1:41002:1.0

Keep-alive HTTP/1.1 with Content-Length bodies only (what ``requests`` sends).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from dataclasses import dataclass, field


@dataclass
class Counters:
    calls: int = 0
    in_flight: int = 0
    max_in_flight: int = 0

    def enter(self) -> None:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        self.in_flight -= 1


@dataclass
class Listener:
    name: str
    port: int
    delay_s: float
    counters: Counters = field(default_factory=Counters)


PROCESS = Counters()


def response(status: str, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


class Handler(asyncio.Protocol):
    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False  # one request at a time per connection (no pipelining needed)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.next_request()

    def next_request(self) -> None:
        if self.busy or self.transport is None:
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if len(self.buffer) < end + 4 + length:
            return
        self.buffer = self.buffer[end + 4 + length :]
        method, path = (head.split(" ", 2) + ["", ""])[:2]
        self.handle(method, path)

    def handle(self, method: str, path: str) -> None:
        listener = self.listener
        if method == "POST" and path == "/predict":
            received = time.perf_counter()
            listener.counters.enter()
            PROCESS.enter()
            self.busy = True
            if listener.delay_s > 0:
                asyncio.get_running_loop().call_later(listener.delay_s, self.answer_predict, received)
            else:
                self.answer_predict(received)
        elif method == "GET" and path == "/health":
            self.send(response("200 OK", b'{"status": "healthy"}'))
        elif method == "GET" and path == "/stats":
            c = listener.counters
            body = {
                "calls": c.calls,
                "in_flight": c.in_flight,
                "max_in_flight": c.max_in_flight,
                "process_calls": PROCESS.calls,
                "process_in_flight": PROCESS.in_flight,
                "process_max_in_flight": PROCESS.max_in_flight,
            }
            self.send(response("200 OK", json.dumps(body).encode()))
        elif method == "POST" and path == "/reset":
            listener.counters.max_in_flight = listener.counters.in_flight
            PROCESS.max_in_flight = PROCESS.in_flight
            self.send(response("200 OK", b"{}"))
        else:
            self.send(response("404 Not Found", b'{"error": "not found"}'))

    def answer_predict(self, received: float) -> None:
        self.listener.counters.leave()
        PROCESS.leave()
        self.busy = False
        own_us = int((time.perf_counter() - received) * 1e6)
        body = b'{"server": "%s", "own_us": %d}' % (self.listener.name.encode(), own_us)
        self.send(response("200 OK", body))
        if self.buffer:
            self.next_request()

    def send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)


async def serve(listeners: list[Listener]) -> None:
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(
            lambda listener=listener: Handler(listener), "127.0.0.1", listener.port, backlog=1024
        )
        for listener in listeners
    ]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    print(f"fast backend listening: {', '.join(f'{x.name}:{x.port}' for x in listeners)}", flush=True)
    await stop.wait()
    for server in servers:
        server.close()


def parse_listener(text: str) -> Listener:
    name, port, delay = text.split(":")
    return Listener(name, int(port), float(delay))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fast_backend", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--listen", action="append", type=parse_listener, required=True, help="name:port:delay_s (repeatable)"
    )
    args = parser.parse_args(argv)
    asyncio.run(serve(args.listen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
