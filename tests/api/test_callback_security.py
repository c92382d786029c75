"""Who may report on a task: servers that demand signed callbacks, the deployment's
default, clocks that differ, headers that are not ASCII, and updates that repeat."""

from __future__ import annotations

import dataclasses
import http.client
import json
from urllib.parse import urlsplit

import pytest

from app.backends import CallbackTokens
from app.core import signatures
from app.core.clock import SystemClock
from app.services import dispatch
from app.store import tasks_repo
from tests.api.test_tasks_api import live  # noqa: F401 - the fixture is used by name

KEY = "backend-secret-key"
DONE = json.dumps({"status": "COMPLETED", "result": {"ok": True}}).encode()


def running_task(ctx, client, auth, port, **server):
    """Register s1 with ``server``'s fields, start a callback task on it (a backend that
    never calls back) and return (task id, its callback URL without host)."""
    body = {
        "id": "s1",
        "name": "s1",
        "capabilities": ["echo"],
        "endpoints": {
            "predict": f"http://127.0.0.1:{port}/predict",
            "health": f"http://127.0.0.1:{port}/health",
        },
        **server,
    }
    r = client.post("/api/servers", json=body, headers=auth("root", ("admin",)))
    assert r.status_code == 201, r.get_json()
    task_id = client.post(
        "/api/task", json={"type": "echo", "async": True, "capabilities": ["echo"]}, headers=auth()
    ).get_json()["id"]
    ctx.queue.take()
    ctx.backends.predict = lambda call: {"status": "accepted"}
    assert dispatch.dispatch(ctx, task_id, 0).value == "accepted"
    return task_id, ctx.tokens.url("", task_id, 1)


def put(client, url, body=DONE, signature=None):
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[signatures.HEADER] = signature
    return client.put(url, data=body, headers=headers)


def signed(ctx, key=KEY, body=DONE):
    return signatures.sign(key, ctx.now_ms() // 1000, body)


def versions(ctx, task_id):
    with ctx.db.session() as s:
        return [t.version for t in tasks_repo.transitions_of(s, task_id)]


def status_of(client, auth, task_id):
    return client.get(f"/api/task/{task_id}", headers=auth()).get_json()["status"]


def test_a_server_that_requires_signatures_gets_401_for_unsigned_or_wrongly_signed_callbacks(
    ctx, client, auth, backend
):
    task_id, url = running_task(ctx, client, auth, backend[1], apiKey=KEY, callbackSignature="required")
    before = versions(ctx, task_id)
    unsigned = put(client, url)
    assert unsigned.status_code == 401
    assert unsigned.get_json()["error"] == "unauthorized"
    assert "requires signed callbacks" in unsigned.get_json()["message"]
    assert put(client, url, signature=signed(ctx, "wrong-key")).status_code == 401
    assert put(client, url, signature="t=1,v1=nonsense").status_code == 401
    progress = json.dumps({"status": "PROCESSING", "progress": 50}).encode()
    assert put(client, url, body=progress).status_code == 401
    # authentication comes before validation: an unsigned bad body is 401, not 422
    assert put(client, url, body=b'{"status": "NOPE"}').status_code == 401
    assert status_of(client, auth, task_id) == "PROCESSING" and versions(ctx, task_id) == before
    done = put(client, url, signature=signed(ctx))
    assert done.status_code == 200 and done.get_json()["status"] == "COMPLETED"


def test_by_default_the_url_token_alone_still_suffices(ctx, client, auth, backend):
    task_id, url = running_task(ctx, client, auth, backend[1], apiKey=KEY)
    assert put(client, url).status_code == 200
    assert status_of(client, auth, task_id) == "COMPLETED"


def test_a_present_but_wrong_signature_is_401_even_when_signatures_are_optional(ctx, client, auth, backend):
    task_id, url = running_task(ctx, client, auth, backend[1], apiKey=KEY, callbackSignature="optional")
    assert put(client, url, signature=signed(ctx, "wrong-key")).status_code == 401
    assert status_of(client, auth, task_id) == "PROCESSING"


@pytest.mark.parametrize(
    ("server", "unsigned_status"),
    [
        ({"apiKey": KEY}, 401),  # the deployment's default applies
        ({}, 200),  # no apiKey: nothing to sign with, the URL token alone
        ({"apiKey": KEY, "callbackSignature": "optional"}, 200),  # the server's own choice
    ],
)
def test_callback_signature_required_applies_to_every_server_with_an_api_key(
    ctx, client, auth, backend, server, unsigned_status
):
    ctx.settings = dataclasses.replace(ctx.settings, callback_signature="required")
    task_id, url = running_task(ctx, client, auth, backend[1], **server)
    assert put(client, url).status_code == unsigned_status
    if unsigned_status == 401:
        assert status_of(client, auth, task_id) == "PROCESSING"
        assert put(client, url, signature=signed(ctx)).status_code == 200


@pytest.mark.parametrize(
    "signature",
    ["t={now},v1=\u00e9\u00e9", "t=\u00b2,v1=" + "0" * 64, "\u00ff" * 300, "t={now},v1=" + "\u00e9" * 64],
)
def test_a_non_ascii_signature_header_is_401_json_not_500(ctx, client, auth, backend, signature):
    task_id, url = running_task(ctx, client, auth, backend[1], apiKey=KEY)
    r = put(client, url, signature=signature.replace("{now}", str(ctx.now_ms() // 1000)))
    assert r.status_code == 401 and r.get_json()["error"] == "unauthorized"
    assert status_of(client, auth, task_id) == "PROCESSING"


def test_raw_non_ascii_header_bytes_over_http_are_401_json(live, ctx, auth, backend):  # noqa: F811
    task_id, url = running_task(ctx, live, auth, backend[1], apiKey=KEY)
    public = urlsplit(ctx.settings.public_url)
    conn = http.client.HTTPConnection(public.hostname, public.port, timeout=10)
    try:
        conn.putrequest("PUT", url)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(DONE)))
        conn.putheader(signatures.HEADER, b"t=%d,v1=\xc3\xa9\xff\x80" % (ctx.now_ms() // 1000))
        conn.endheaders(DONE)
        answer = conn.getresponse()
        assert answer.status == 401
        assert json.loads(answer.read())["error"] == "unauthorized"
    finally:
        conn.close()
    assert status_of(live, auth, task_id) == "PROCESSING"


class AheadClock:
    """A worker's clock running ``ahead_s`` ahead of the API's."""

    def __init__(self, ahead_s: int) -> None:
        self.ahead_ms = ahead_s * 1000

    def now_ms(self) -> int:
        return SystemClock().now_ms() + self.ahead_ms


@pytest.mark.parametrize(("ahead_s", "expected"), [(2, 200), (20, 200), (60, 401)])
def test_a_worker_whose_clock_is_ahead_mints_tokens_the_api_accepts_within_the_leeway(
    ctx, client, auth, backend, ahead_s, expected
):
    assert ctx.settings.clock_leeway_s == 30
    task_id, _ = running_task(ctx, client, auth, backend[1])
    worker = CallbackTokens(ctx.settings.callback_secret, AheadClock(ahead_s), ctx.settings.clock_leeway_s)
    r = put(client, worker.url("", task_id, 1))
    assert r.status_code == expected, r.get_json()
    assert status_of(client, auth, task_id) == ("COMPLETED" if expected == 200 else "PROCESSING")


def test_the_same_processing_callback_fifty_times_is_one_transition(ctx, client, auth, backend):
    task_id, url = running_task(ctx, client, auth, backend[1])
    body = json.dumps({"status": "PROCESSING", "progress": 30, "metadata": {"stage": "decode"}}).encode()
    answers = [put(client, url, body=body) for _ in range(50)]
    assert {r.status_code for r in answers} == {200}
    assert len({json.dumps(r.get_json(), sort_keys=True) for r in answers}) == 1
    with ctx.db.session() as s:
        statuses = [t.to_status for t in tasks_repo.transitions_of(s, task_id)]
    assert statuses == ["PENDING", "PROCESSING", "PROCESSING"]
