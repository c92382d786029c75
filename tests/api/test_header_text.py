"""Header values are bytes on the wire (WSGI hands them over decoded as Latin-1): any
byte, UTF-8 or not, in a header taskfleet reads (Idempotency-Key, Last-Event-ID,
Authorization for JWTs and for METRICS_TOKEN, X-Taskfleet-Signature) is a 4xx or
ordinary text, never a 500."""

from __future__ import annotations

import pytest

from app.core import signatures
from tests.services.helpers import start_attempt

#: Header values as a WSGI server passes them: é as Latin-1, é as UTF-8 bytes, bytes
#: that are not UTF-8, control characters.
ODD_VALUES = ["k\xe9", "\xc3\xa9t\xc3\xa9", "\xff\xfe\x80", "a\x01\x7fb", "\xa0"]
SERVER = {
    "id": "s1",
    "name": "n",
    "apiKey": "k-odd",
    "maxConcurrent": 2,
    "capabilities": ["echo"],
    "endpoints": {"predict": "http://127.0.0.1:9/p", "health": "http://127.0.0.1:9/h"},
}


@pytest.mark.parametrize("value", ODD_VALUES)
def test_an_odd_idempotency_key_is_text_or_refused(client, auth, value):
    first = client.post("/api/task", json={"type": "e"}, headers={**auth(), "Idempotency-Key": value})
    assert first.status_code in (201, 422), first.get_data(as_text=True)
    again = client.post("/api/task", json={"type": "e"}, headers={**auth(), "Idempotency-Key": value})
    assert again.status_code in (200, 201, 422)
    if first.status_code == 201:
        assert again.get_json()["id"] == first.get_json()["id"]


def finished_task(client, auth):
    """A cancelled task: its event stream, once accepted, ends at once."""
    task_id = client.post("/api/task", json={"type": "e"}, headers=auth()).get_json()["id"]
    assert client.post(f"/api/task/{task_id}/cancel", headers=auth()).status_code == 200
    return task_id


@pytest.mark.parametrize("value", ODD_VALUES)
def test_an_odd_last_event_id_is_422(client, auth, value):
    task_id = finished_task(client, auth)
    r = client.get(f"/api/task/{task_id}/events", headers={**auth(), "Last-Event-ID": value})
    assert r.status_code == 422, r.get_data(as_text=True)


@pytest.mark.parametrize("value", ["1-\u0661", "\u0662-3", "\ufffd", "\u00e9", "1-2\u00a0x"])
def test_an_odd_last_event_id_in_the_query_is_422(client, auth, value):
    """Digits are ASCII digits: "\u0661" (ARABIC-INDIC ONE) is a digit to Python's \\d
    and int(), and was taken for one."""
    task_id = finished_task(client, auth)
    r = client.get(f"/api/task/{task_id}/events", query_string={"lastEventId": value}, headers=auth())
    assert r.status_code == 422, r.get_data(as_text=True)


@pytest.mark.parametrize("value", [f"Bearer {v}" for v in ODD_VALUES] + ODD_VALUES + ["Bearer a.\xe9.c"])
def test_an_odd_authorization_header_is_401(client, value):
    r = client.get("/api/tasks", headers={"Authorization": value})
    assert r.status_code == 401, r.get_data(as_text=True)


#: Signatures with odd bytes, and odd text where a signature should be (a non-ASCII
#: signature was a 500 until the callbacks branch of issue 17).
SIGNATURES = [f"t=1,v1={v}" for v in ODD_VALUES] + ODD_VALUES


@pytest.mark.parametrize("value", SIGNATURES)
def test_an_odd_callback_signature_is_4xx(ctx, client, auth, value):
    admin = auth("root", ("admin",))
    assert client.post("/api/servers", json=SERVER, headers=admin).status_code == 201
    task_id = client.post(
        "/api/task", json={"type": "e", "capabilities": ["echo"]}, headers=admin
    ).get_json()["id"]
    start_attempt(ctx, task_id)
    r = client.put(
        f"/api/task/{task_id}?token={ctx.tokens.issue(task_id, 1)}",
        json={"status": "PROCESSING", "progress": 5},
        headers={signatures.HEADER: value.replace("t=1", f"t={ctx.now_ms() // 1000}")},
    )
    assert 400 <= r.status_code < 500, r.get_data(as_text=True)


@pytest.mark.parametrize("value", [f"Bearer {v}" for v in ODD_VALUES] + ODD_VALUES)
def test_an_odd_metrics_token_is_401(sqlite_url, value):
    from app.core.clock import ManualClock
    from tests.api.test_ops_probes import _app

    client = _app(sqlite_url, ManualClock(), metrics_token="scrape-secret-\xe9").test_client()
    assert client.get("/metrics", headers={"Authorization": value}).status_code == 401
