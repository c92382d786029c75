"""Retries against a tiny scripted HTTP server: 429/503 after their Retry-After (capped),
lost answers again only for requests that may be repeated."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from taskfleet_client import AsyncClient, Client, RetryPolicy, ServerError, TooManyRequests, TransportError

TASK = {"id": "t1", "type": "echo", "status": "PENDING", "progress": 0}
BUSY = (503, {"Retry-After": "1"}, {"error": "unavailable", "message": "Redis is unreachable", "details": {}})
OK = (200, {}, TASK)
#: Close the connection without answering: the request may or may not have been done.
DROP = None


class Scripted(ThreadingHTTPServer):
    """Answers each request with the next entry of ``script`` (the last one repeats) and
    records (method, path, Idempotency-Key, time)."""

    daemon_threads = True

    def __init__(self, script: list) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.script, self.hits = list(script), []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class Handler(BaseHTTPRequestHandler):
    server: Scripted

    def log_message(self, *args) -> None:
        pass

    def answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        hits, script = self.server.hits, self.server.script
        hits.append((self.command, self.path, self.headers.get("Idempotency-Key"), time.monotonic()))
        entry = script[min(len(hits), len(script)) - 1]
        if entry is DROP:
            self.close_connection = True
            return
        status, headers, body = entry
        raw = isinstance(body, bytes)  # not JSON: a proxy's page
        data = body if raw else json.dumps(body).encode()
        self.send_response(status)
        kind = "text/html" if raw else "application/json"
        for name, value in {"Content-Type": kind, **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = answer


@pytest.fixture
def scripted() -> Iterator:
    servers = []

    def start(*script) -> Scripted:
        server = Scripted(list(script))
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


FAST = RetryPolicy(retries=2, backoff_s=0.01)


def test_a_503_is_retried_after_its_retry_after(scripted):
    server = scripted(BUSY, OK)
    with Client(server.url, "t") as client:
        task = client.get("t1")
    assert task.id == "t1" and len(server.hits) == 2
    assert server.hits[1][3] - server.hits[0][3] >= 0.95


def test_the_async_client_retries_a_503_the_same_way(scripted):
    server = scripted(BUSY, OK)

    async def get():
        async with AsyncClient(server.url, "t") as client:
            return await client.get("t1")

    assert asyncio.run(get()).id == "t1"
    assert len(server.hits) == 2 and server.hits[1][3] - server.hits[0][3] >= 0.95


def test_a_long_retry_after_is_capped(scripted):
    server = scripted((429, {"Retry-After": "3600"}, {}), OK)
    with Client(server.url, "t", retry=RetryPolicy(max_wait_s=0.2)) as client:
        started = time.monotonic()
        client.get("t1")
    assert time.monotonic() - started < 2 and len(server.hits) == 2


def test_429_after_the_retries_are_spent_raises_with_its_retry_after(scripted):
    server = scripted((429, {"Retry-After": "0"}, {"error": "too_many_requests", "message": "slow down"}))
    with Client(server.url, "t", retry=FAST) as client, pytest.raises(TooManyRequests) as caught:
        client.cancel("t1")  # not idempotent, but a 429 was not carried out: retried too
    assert len(server.hits) == 3
    assert (caught.value.status, caught.value.retry_after, str(caught.value)) == (429, 0.0, "slow down (429)")


def test_a_lost_answer_is_retried_for_reads_and_submits_only(scripted):
    server = scripted(DROP, DROP, OK)
    with Client(server.url, "t", retry=FAST) as client:
        assert client.get("t1").id == "t1"
    assert len(server.hits) == 3

    server = scripted(DROP, OK)
    with Client(server.url, "t", retry=FAST) as client:
        client.submit("echo")
    keys = [hit[2] for hit in server.hits]
    assert len(keys) == 2 and keys[0] == keys[1] is not None  # the same Idempotency-Key

    server = scripted(DROP, OK)
    with Client(server.url, "t", retry=FAST) as client, pytest.raises(TransportError) as caught:
        client.cancel("t1")  # may have been done: a second cancel would be a 409
    assert len(server.hits) == 1 and str(caught.value).startswith("no answer from")


def test_an_error_that_is_not_json_keeps_the_start_of_its_text(scripted):
    server = scripted((502, {}, b"<html>bad gateway</html>"))
    with Client(server.url, "t", retry=FAST) as client, pytest.raises(ServerError) as caught:
        client.get("t1")
    error = caught.value
    assert (error.status, error.message, error.error) == (502, "<html>bad gateway</html>", None)
    assert len(server.hits) == 1  # only 429 and 503 are retried
