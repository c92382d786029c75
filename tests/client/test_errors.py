"""Each error status of the real API comes back as its own exception, with the API's
``error``, ``message``, ``details`` and ``status``."""

from __future__ import annotations

import threading

import pytest
import redis as redis_lib
from taskfleet_client import (
    BadRequest,
    Client,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RetryPolicy,
    TaskfleetError,
    TransportError,
    Unauthorized,
    Unavailable,
    Unprocessable,
    UnsupportedMediaType,
)
from werkzeug.serving import make_server

from app import create_app
from app.devstack import free_port
from app.services.context import build_context
from app.store.db import Database
from tests.conftest import RecordingQueue, make_settings

NO_RETRY = RetryPolicy(retries=0)


@pytest.fixture
def alice(fleet):
    with Client(fleet.url, fleet.alice, retry=NO_RETRY) as client:
        yield client


def test_a_malformed_body_is_bad_request(alice):
    with pytest.raises(BadRequest) as caught:
        alice.request("POST", "/task", content=b'{"type": ', headers={"Content-Type": "application/json"})
    assert (caught.value.status, caught.value.error) == (400, "malformed_json")


def test_a_forged_or_missing_token_is_unauthorized(fleet):
    for token in ("not-a-jwt", None):
        with Client(fleet.url, token, retry=NO_RETRY) as client, pytest.raises(Unauthorized) as caught:
            client.list()
        assert caught.value.status == 401 and caught.value.message


def test_a_client_token_on_admin_endpoints_is_forbidden(alice):
    for call in (alice.servers, alice.stats, alice.algorithm):
        with pytest.raises(Forbidden) as caught:
            call()
        assert (caught.value.status, caught.value.error) == (403, "forbidden")


def test_an_unknown_or_foreign_task_is_not_found(alice, fleet):
    with pytest.raises(NotFound) as caught:
        alice.get("no-such-task")
    assert str(caught.value) == "task no-such-task not found (404)"
    assert caught.value.error == "not_found" and caught.value.details == {}
    mine = alice.submit("echo", capabilities=["no-such-capability"])
    with Client(fleet.url, fleet.bob) as bob, pytest.raises(NotFound):
        bob.cancel(mine.id)
    alice.cancel(mine.id)


def test_a_body_over_the_limit_is_payload_too_large(alice):
    with pytest.raises(PayloadTooLarge) as caught:
        alice.submit("echo", {"blob": "x" * (32 * 1024 * 1024 + 1)})  # over MAX_BODY_BYTES
    assert caught.value.status == 413 and caught.value.error == "payload_too_large"


def test_a_body_that_is_not_json_is_unsupported_media_type(alice):
    with pytest.raises(UnsupportedMediaType) as caught:
        alice.request("POST", "/task", content=b"type=echo", headers={"Content-Type": "text/plain"})
    assert caught.value.status == 415


def test_values_out_of_range_are_unprocessable_with_the_fields_named(alice, fleet):
    with pytest.raises(Unprocessable) as caught:
        alice.submit("echo", priority=11, extra={"colour": "red"})
    error = caught.value
    assert (error.status, error.error) == (422, "validation_error")
    assert set(error.details["json"]) == {"priority", "colour"}
    with Client(fleet.url, fleet.admin) as admin, pytest.raises(Unprocessable):
        admin.set_algorithm("fastest-please")


def test_an_unknown_field_name_is_a_type_error_before_sending(alice):
    with pytest.raises(TypeError, match="unknown task field"):
        alice.submit("echo", colour="red")  # type: ignore[call-arg]


def test_a_store_outage_is_unavailable_with_retry_after(sqlite_url, token):
    """The real app with its Redis gone answers 503; once retries are spent the client
    raises Unavailable carrying the Retry-After."""
    dead = redis_lib.Redis(port=free_port(), decode_responses=True, socket_connect_timeout=0.5)
    ctx = build_context(
        make_settings(sqlite_url), RecordingQueue(), redis_client=dead, db=Database(sqlite_url)
    )
    server = make_server("127.0.0.1", 0, create_app(context=ctx), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = Client(f"http://127.0.0.1:{server.port}", token(), retry=NO_RETRY)
        with client, pytest.raises(Unavailable) as caught:
            client.get("some-id")
    finally:
        server.shutdown()
        ctx.db.dispose()
    assert (caught.value.status, caught.value.error, caught.value.retry_after) == (503, "unavailable", 5.0)


def test_no_server_at_the_url_is_a_transport_error():
    client = Client(f"http://127.0.0.1:{free_port()}", "t", retry=NO_RETRY)
    with client, pytest.raises(TransportError) as caught:
        client.get("x")
    assert caught.value.status is None and str(caught.value).startswith("cannot connect to http://127.0.0.1:")
    assert isinstance(caught.value, TaskfleetError)
