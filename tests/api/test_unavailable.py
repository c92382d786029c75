"""Redis or the database unreachable: 503 with Retry-After, never a 500."""

import redis as redis_lib

from app import create_app
from app.devstack import free_port
from app.services.context import build_context
from app.store.db import Database
from tests.conftest import RecordingQueue, make_settings


def test_reads_answer_503_with_retry_after_when_redis_is_down(sqlite_url, auth):
    dead = redis_lib.Redis(port=free_port(), decode_responses=True, socket_connect_timeout=0.5)
    ctx = build_context(
        make_settings(sqlite_url), RecordingQueue(), redis_client=dead, db=Database(sqlite_url)
    )
    client = create_app(context=ctx).test_client()
    r = client.get("/api/task/some-id", headers=auth())
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "5"
    assert r.get_json()["error"] == "unavailable"


def test_writes_answer_503_and_store_nothing_when_the_database_is_down(real_redis_client, auth):
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/none"
    ctx = build_context(
        make_settings(url), RecordingQueue(), redis_client=real_redis_client, db=Database(url)
    )
    client = create_app(context=ctx).test_client()
    r = client.post("/api/task", json={"type": "echo"}, headers=auth())
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert ctx.queue.jobs == []
    assert real_redis_client.keys("tf:task:*") == []
