"""``BackendClient.health`` against a real HTTP server: what counts as healthy, and why
a check failed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.backends import SERVER_ID_MISMATCH, BackendClient, HealthAnswer
from app.devstack import free_port


@pytest.fixture
def answering() -> Iterator[tuple[str, dict]]:
    """A health endpoint that answers ``answer['status']`` with ``answer['body']``."""
    answer = {"status": 200, "body": b""}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args):
            pass

        def do_GET(self):
            self.send_response(answer["status"])
            self.send_header("Content-Length", str(len(answer["body"])))
            self.end_headers()
            self.wfile.write(answer["body"])

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{port}/health", answer
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, b'{"status": "healthy", "serverId": "s1"}', HealthAnswer(True)),
        (200, b'{"status": "healthy", "serverId": "s2"}', HealthAnswer(False, SERVER_ID_MISMATCH)),
        (200, b'{"serverId": 7}', HealthAnswer(False, SERVER_ID_MISMATCH)),
        (200, b'{"status": "healthy"}', HealthAnswer(True)),  # names no server
        (200, b'{"serverId": null}', HealthAnswer(True)),
        (200, b'["s2"]', HealthAnswer(True)),
        (204, b"", HealthAnswer(True)),
        (200, b"OK", HealthAnswer(True)),  # not JSON: healthy as before
        (503, b'{"serverId": "s1"}', HealthAnswer(False, "http_503")),
        (302, b"", HealthAnswer(False, "http_302")),
    ],
)
def test_a_2xx_is_healthy_unless_it_names_another_server(answering, status, body, expected):
    url, answer = answering
    answer.update(status=status, body=body)
    assert BackendClient(5).health(url, "s1") == expected


def test_without_a_server_id_any_2xx_is_healthy(answering):
    url, answer = answering
    answer["body"] = b'{"serverId": "someone"}'
    assert BackendClient(5).health(url) == HealthAnswer(True)


def test_a_server_that_does_not_answer_fails_the_check_as_a_connection_error():
    assert BackendClient(5).health(f"http://127.0.0.1:{free_port()}/health", "s1") == HealthAnswer(
        False, "connection"
    )
