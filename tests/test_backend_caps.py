"""Backend answers are read with a cap, against a real HTTP server: a sync or poll
answer, a health answer and a streamed one (in all and per event) past its cap fail the
attempt as ``too_large`` (not retried) without reading the rest; an answer with text no
store can hold is ``malformed``. Then one task end to end: FAILED after one attempt."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.backends import HEALTH_MAX_BYTES, BackendClient, PredictCall
from app.core.errors import BackendError
from app.core.states import TaskStatus
from app.devstack import free_port
from tests.services.helpers import drain, register_backend, submit_task

CAP = 64 * 1024
EVENT_CAP = 4 * 1024


def sized_json(n: int) -> bytes:
    """A JSON answer of exactly ``n`` bytes."""
    return b'{"x": "' + b"a" * (n - 9) + b'"}'


#: What the server answers, by name: (headers, body, or a generator of body pieces).
ANSWERS = {
    "at_cap": ({"Content-Type": "application/json"}, sized_json(CAP)),
    "over_cap": ({"Content-Type": "application/json"}, sized_json(CAP + 1)),
    "over_cap_chunked": ({"Content-Type": "application/json"}, None),  # endless, no length
    "gzip_bomb": (
        {"Content-Type": "application/json", "Content-Encoding": "gzip"},
        gzip.compress(sized_json(50 * CAP)),
    ),
    "lies_about_length": ({"Content-Type": "application/json", "Content-Length": str(CAP * 10)}, b"{}"),
    "surrogate": ({"Content-Type": "application/json"}, b'{"text": "a\\ud800"}'),
    "nul": ({"Content-Type": "application/json"}, b'{"text": "a\\u0000"}'),
    "events_ok": (
        {"Content-Type": "text/event-stream"},
        b'data: {"t": "a"}\n\ndata: {"t": "b"}\n\nevent: result\ndata: {"done": true}\n\n',
    ),
    "event_over_cap": ({"Content-Type": "text/event-stream"}, b"data: " + b"a" * (EVENT_CAP + 1) + b"\n\n"),
    "event_without_end": ({"Content-Type": "text/event-stream"}, None),  # one event, never ended
    "events_over_total": ({"Content-Type": "text/event-stream"}, None),  # small events, endless
    "event_surrogate": ({"Content-Type": "text/event-stream"}, b'data: {"t": "\\udc00"}\n\n'),
}


def endless(name: str) -> Iterator[bytes]:
    piece = {
        "over_cap_chunked": b"a" * 4096,
        "event_without_end": b"data: " + b"a" * 4090 + b"\n",
        "events_over_total": b'data: {"t": "' + b"a" * 1000 + b'"}\n\n',
    }[name]
    if name == "over_cap_chunked":
        yield b'{"x": "'
    while True:
        yield piece


@pytest.fixture
def backend_url() -> Iterator[tuple[str, dict]]:
    """A real HTTP server answering ``ANSWERS[<last path segment>]``; an endless answer
    sets ``sent["hung_up"]`` when the client closes the connection on it."""
    sent = {"bytes": 0, "hung_up": threading.Event(), "peers": set()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args):
            pass

        def answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            name = self.path.rsplit("/", 1)[-1]
            sent["peers"].add(self.client_address)
            headers, body = ANSWERS[name]
            self.send_response(503 if name == "busy" else 200)
            for key, value in headers.items():
                self.send_header(key, value)
            if body is not None:
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: 2 * CAP])
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for piece in endless(name):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    sent["bytes"] += len(piece)
                    if sent["bytes"] > 2000 * CAP:
                        return  # the client did not stop: the test fails on ``hung_up``
            except OSError:
                sent["hung_up"].set()  # as it should

        do_GET = do_POST = answer

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{port}", sent
    server.shutdown()
    server.server_close()


def client() -> BackendClient:
    return BackendClient(5, max_response_bytes=CAP, max_event_bytes=EVENT_CAP)


def call(url: str) -> PredictCall:
    return PredictCall(
        url=url, api_key=None, task_id="t1", request={"type": "echo"}, callback_url="", timeout_s=5
    )


def test_an_answer_at_the_cap_is_read(backend_url):
    base, _ = backend_url
    assert len(client().predict(call(f"{base}/at_cap"))["x"]) == CAP - 9


@pytest.mark.parametrize("name", ["over_cap", "over_cap_chunked", "gzip_bomb", "lies_about_length"])
@pytest.mark.parametrize("how", ["predict", "poll"])
def test_an_answer_past_the_cap_fails_as_too_large_without_reading_on(backend_url, name, how):
    base, sent = backend_url
    began = time.monotonic()
    with pytest.raises(BackendError) as raised:
        if how == "predict":
            client().predict(call(f"{base}/{name}"))
        else:
            client().poll(f"{base}/{name}", None, 5)
    assert raised.value.kind == "too_large" and not raised.value.retryable
    assert "BACKEND_MAX_RESPONSE_BYTES" in raised.value.message
    assert time.monotonic() - began < 5
    assert_stopped_reading(name, sent)


def assert_stopped_reading(name, sent):
    """An endless answer was given up: the client hung up long before the server would
    have stopped by itself (what it wrote meanwhile sits in socket buffers)."""
    if ANSWERS[name][1] is None:
        assert sent["hung_up"].wait(10), sent["bytes"]
        assert sent["bytes"] < 2000 * CAP


@pytest.mark.parametrize("name", ["surrogate", "nul"])
def test_an_answer_with_unstorable_text_is_malformed(backend_url, name):
    base, _ = backend_url
    with pytest.raises(BackendError) as raised:
        client().predict(call(f"{base}/{name}"))
    assert raised.value.kind == "malformed" and "answer.text" in raised.value.message


def test_a_stream_within_its_caps_is_read(backend_url):
    base, _ = backend_url
    chunks = []
    assert client().predict(call(f"{base}/events_ok"), on_chunks=chunks.extend) == {"done": True}
    assert chunks == [{"t": "a"}, {"t": "b"}]


@pytest.mark.parametrize(
    "name, setting",
    [
        ("event_over_cap", "BACKEND_MAX_EVENT_BYTES"),
        ("event_without_end", "BACKEND_MAX_EVENT_BYTES"),
        ("events_over_total", "BACKEND_MAX_RESPONSE_BYTES"),
    ],
)
def test_a_stream_past_a_cap_fails_as_too_large(backend_url, name, setting):
    base, sent = backend_url
    chunks = []
    with pytest.raises(BackendError) as raised:
        client().predict(call(f"{base}/{name}"), on_chunks=chunks.extend)
    assert raised.value.kind == "too_large" and not raised.value.retryable
    assert setting in raised.value.message
    assert_stopped_reading(name, sent)
    assert sum(len(str(c)) for c in chunks) <= CAP


def test_a_streamed_event_with_unstorable_text_is_malformed(backend_url):
    base, _ = backend_url
    with pytest.raises(BackendError) as raised:
        client().predict(call(f"{base}/event_surrogate"), on_chunks=lambda chunks: None)
    assert raised.value.kind == "malformed"


def test_a_health_answer_past_its_cap_is_unhealthy(backend_url):
    base, _ = backend_url
    ANSWERS["big_health"] = ({"Content-Type": "application/json"}, sized_json(HEALTH_MAX_BYTES + 1))
    try:
        answer = BackendClient(5).health(f"{base}/big_health", "s1")
    finally:
        del ANSWERS["big_health"]
    assert (answer.ok, answer.reason) == (False, "too_large")


def test_a_task_whose_answer_is_too_large_fails_after_one_attempt(ctx, backend_url):
    base, _ = backend_url
    port = int(base.rsplit(":", 1)[1])
    ctx.backends.max_response_bytes = CAP
    register_backend(ctx, port, endpoints={"predict": f"{base}/over_cap", "health": f"{base}/at_cap"})
    task_id = submit_task(ctx, {"a": 1}, max_retries=3)
    drain(ctx)
    state = ctx.tasks.get(task_id)
    assert state.status is TaskStatus.FAILED
    assert state.attempt == 1
    assert "BACKEND_MAX_RESPONSE_BYTES" in (state.error or "")


def test_a_busy_answer_keeps_its_connection(backend_url):
    """Error answers are read (when small) so the pooled connection is used again, as
    it was before answers were streamed."""
    base, sent = backend_url
    ANSWERS["busy"] = ({"Content-Type": "application/json"}, b'{"error": "busy"}')
    backends = client()
    try:
        for _ in range(3):
            with pytest.raises(BackendError):
                backends.poll(f"{base}/busy", None, 5)
    finally:
        del ANSWERS["busy"]
    assert len(sent["peers"]) == 1  # one connection for the three calls
