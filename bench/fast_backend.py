"""A cheap HTTP backend for benchmarks: one process, one asyncio loop, many listeners.

It speaks the part of the seed protocol the benchmark's tasks need and costs little CPU
per call (a canned answer; a ``sync`` listener does not even parse the request), so
that what a benchmark measures is the dispatcher, not the backend. Each listener has a
kind:

  sync (default)  POST /predict -> 200 {"server": <name>, "own_us": <microseconds it
                  held the call>} after the listener's delay (0: at once; 1.0: one
                  second, the "slow backend" of bench part 2). ``own_us`` is the
                  backend's own time, which bench part 3 subtracts from the round trip.
  batch           POST /predict with {"batch": [<predict body>, ...]} -> 200
                  {"results": [{"status": "COMPLETED", "result": {"server": <name>}},
                  ...]} (one item per task, same order) after the delay, once per call
                  whatever the batch's size; a body without "batch" is answered as
                  ``sync`` does.
  poll            POST /predict -> 202 {"jobId": <the body's task_id>} at once; the
                  job is done ``delay`` s later. GET /status/<job> -> 200
                  {"status": "PROCESSING"} until then, {"status": "COMPLETED",
                  "result": {"server": <name>}} after (404 for a job it never took).
  stream          POST /predict -> 200 text/event-stream (chunked): after STREAM_LEAD_S,
                  STREAM_CHUNKS events spread evenly over the delay, each ``data: {"i": <n>, "sent_ns":
                  <time.time_ns() as it is written>}``, then ``event: result``
                  {"server": <name>, "chunks": <n>}. Bench part 8 subtracts ``sent_ns``
                  from the time a client of the task's event stream reads the chunk.

  GET  /health   -> 200 {"status": "healthy"}
  GET  /stats    -> 200 of this listener: "kind", "calls" (predict calls), "items"
                    (tasks in them: one per call but for batches), "polls" (status
                    reads), "batch_sizes" ({size: calls}), "in_flight" and
                    "max_in_flight" (tasks: a batch's items, a poll job until it is
                    done); and "process_calls", "process_items", "process_in_flight",
                    "process_max_in_flight" over all listeners of the process.
  POST /reset    -> max_in_flight := in_flight (this listener and the process).

  python -m bench.fast_backend --listen fast-1:41001:0 --listen slow-1:41002:1.0 \
      --listen batch-1:41003:0.02:batch --listen poll-1:41004:0.02:poll

Keep-alive HTTP/1.1 with Content-Length bodies only (what ``requests`` sends). No
thread per call: delays are ``call_later`` on the loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import unquote

KINDS = ("sync", "batch", "poll", "stream")
#: Chunks a ``stream`` listener sends per call, and the seconds before the first (so a
#: client that opens the task's event stream right after submitting it is there in time).
STREAM_CHUNKS = 20
STREAM_LEAD_S = 0.5
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


@dataclass
class Counters:
    calls: int = 0
    items: int = 0
    polls: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    batch_sizes: Counter[int] = field(default_factory=Counter)

    def enter(self, items: int = 1) -> None:
        self.calls += 1
        self.items += items
        self.in_flight += items
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self, items: int = 1) -> None:
        self.in_flight -= items


@dataclass
class Listener:
    name: str
    port: int
    delay_s: float
    kind: str = "sync"
    counters: Counters = field(default_factory=Counters)
    #: poll: job id -> loop time it is done at.
    jobs: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.completed_item = b'{"status": "COMPLETED", "result": {"server": "%s"}}' % self.name.encode()


PROCESS = Counters()


def response(status: str, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def chunk(data: bytes) -> bytes:
    """One piece of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


NOT_FOUND = response("404 Not Found", b'{"error": "not found"}')
PROCESSING = response("200 OK", b'{"status": "PROCESSING"}')


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
        body = self.buffer[end + 4 : end + 4 + length]
        self.buffer = self.buffer[end + 4 + length :]
        method, path = (head.split(" ", 2) + ["", ""])[:2]
        self.handle(method, path, body)

    def handle(self, method: str, path: str, body: bytes) -> None:
        listener = self.listener
        if method == "POST" and path == "/predict":
            if listener.kind == "poll":
                self.take_job(body)
            elif listener.kind == "batch" and b'"batch"' in body:
                self.predict_batch(body)
            elif listener.kind == "stream":
                self.predict_stream()
            else:
                self.predict_one()
        elif method == "GET" and path.startswith("/status/"):
            self.job_status(unquote(path.removeprefix("/status/")))
        elif method == "GET" and path == "/health":
            self.send(response("200 OK", b'{"status": "healthy"}'))
        elif method == "GET" and path == "/stats":
            self.send(response("200 OK", json.dumps(stats(listener)).encode()))
        elif method == "POST" and path == "/reset":
            listener.counters.max_in_flight = listener.counters.in_flight
            PROCESS.max_in_flight = PROCESS.in_flight
            self.send(response("200 OK", b"{}"))
        else:
            self.send(NOT_FOUND)

    # -- sync: one task per call ----------------------------------------------------

    def predict_one(self) -> None:
        received = time.perf_counter()
        self.listener.counters.enter()
        PROCESS.enter()
        self.busy = True
        if self.listener.delay_s > 0:
            asyncio.get_running_loop().call_later(self.listener.delay_s, self.answer_one, received)
        else:
            self.answer_one(received)

    def answer_one(self, received: float) -> None:
        self.listener.counters.leave()
        PROCESS.leave()
        own_us = int((time.perf_counter() - received) * 1e6)
        body = b'{"server": "%s", "own_us": %d}' % (self.listener.name.encode(), own_us)
        self.answer(response("200 OK", body))

    # -- batch: several tasks per call ----------------------------------------------

    def predict_batch(self, body: bytes) -> None:
        try:
            n = len(json.loads(body)["batch"])
        except (ValueError, KeyError, TypeError):
            self.send(response("400 Bad Request", b'{"error": "not a batch"}'))
            return
        self.listener.counters.enter(n)
        self.listener.counters.batch_sizes[n] += 1
        PROCESS.enter(n)
        self.busy = True
        asyncio.get_running_loop().call_later(self.listener.delay_s, self.answer_batch, n)

    def answer_batch(self, n: int) -> None:
        self.listener.counters.leave(n)
        PROCESS.leave(n)
        items = b", ".join([self.listener.completed_item] * n)
        self.answer(response("200 OK", b'{"results": [' + items + b"]}"))

    # -- poll: take the job, answer its status later --------------------------------

    def take_job(self, body: bytes) -> None:
        try:
            job = str(json.loads(body)["task_id"])
        except (ValueError, KeyError, TypeError):
            self.send(response("400 Bad Request", b'{"error": "no task_id"}'))
            return
        listener = self.listener
        loop = asyncio.get_running_loop()
        listener.jobs[job] = loop.time() + listener.delay_s
        listener.counters.enter()
        PROCESS.enter()
        loop.call_later(listener.delay_s, _job_done, listener)
        self.send(response("202 Accepted", json.dumps({"jobId": job}).encode()))

    def job_status(self, job: str) -> None:
        listener = self.listener
        listener.counters.polls += 1
        PROCESS.polls += 1
        done_at = listener.jobs.get(job)
        if listener.kind != "poll" or done_at is None:
            self.send(NOT_FOUND)
        elif asyncio.get_running_loop().time() < done_at:
            self.send(PROCESSING)
        else:
            self.send(response("200 OK", listener.completed_item))

    # -- stream: chunks as server-sent events, stamped with their send time ---------

    def predict_stream(self) -> None:
        self.listener.counters.enter()
        PROCESS.enter()
        self.busy = True
        self.send(STREAM_HEAD)
        loop = asyncio.get_running_loop()
        step = self.listener.delay_s / STREAM_CHUNKS
        for i in range(STREAM_CHUNKS):
            loop.call_later(STREAM_LEAD_S + step * i, self.stream_chunk, i)

    def stream_chunk(self, i: int) -> None:
        self.send(chunk(b'data: {"i": %d, "sent_ns": %d}\n\n' % (i, time.time_ns())))
        if i < STREAM_CHUNKS - 1:
            return
        self.listener.counters.leave()
        PROCESS.leave()
        result = b'event: result\ndata: {"server": "%s", "chunks": %d}\n\n' % (
            self.listener.name.encode(),
            i + 1,
        )
        self.answer(chunk(result) + b"0\r\n\r\n")

    # -- the connection -------------------------------------------------------------

    def answer(self, data: bytes) -> None:
        """The delayed answer of a call: send it, then serve what came in meanwhile."""
        self.busy = False
        self.send(data)
        if self.buffer:
            self.next_request()

    def send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)


def _job_done(listener: Listener) -> None:
    listener.counters.leave()
    PROCESS.leave()


def stats(listener: Listener) -> dict[str, object]:
    c = listener.counters
    return {
        "kind": listener.kind,
        "calls": c.calls,
        "items": c.items,
        "polls": c.polls,
        "batch_sizes": {str(size): n for size, n in sorted(c.batch_sizes.items())},
        "in_flight": c.in_flight,
        "max_in_flight": c.max_in_flight,
        "process_calls": PROCESS.calls,
        "process_items": PROCESS.items,
        "process_in_flight": PROCESS.in_flight,
        "process_max_in_flight": PROCESS.max_in_flight,
    }


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
    """``name:port:delay_s[:kind]``, kind one of sync (the default), batch, poll."""
    name, port, delay, *rest = text.split(":")
    kind = rest[0] if rest else "sync"
    if kind not in KINDS or len(rest) > 1:
        raise argparse.ArgumentTypeError(f"{text!r}: want name:port:delay_s[:kind], kind one of {KINDS}")
    return Listener(name, int(port), float(delay), kind)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fast_backend", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--listen",
        action="append",
        type=parse_listener,
        required=True,
        help="name:port:delay_s[:sync|batch|poll|stream] (repeatable)",
    )
    args = parser.parse_args(argv)
    asyncio.run(serve(args.listen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
