"""A Redis at maxmemory with noeviction refuses writes: the API answers 503 with
Retry-After and a clear error, never a 500, and a refused submit leaves no row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis as redis_lib
from sqlalchemy import func, select

from app import create_app
from app.services.context import build_context
from app.store.models import TaskRow, TaskTransitionRow
from tests.conftest import RecordingQueue, make_settings
from tests.servers import RedisServer, redis_server


@pytest.fixture(scope="module")
def full_redis() -> Iterator[RedisServer]:
    """A Redis of its own (its memory cap must not reach the shared one)."""
    with redis_server() as server:
        yield server


@pytest.fixture
def ctx_full(full_redis: RedisServer, pg_db):
    client = redis_lib.Redis.from_url(full_redis.url, decode_responses=True)
    client.config_set("maxmemory", 0)
    client.flushall()
    context = build_context(
        make_settings(pg_db.url, full_redis.url), RecordingQueue(), redis_client=client, db=pg_db
    )
    context.limits.publish([], [], 0)
    yield context, client
    client.config_set("maxmemory", 0)
    client.close()


def _fill(client: redis_lib.Redis) -> None:
    """Cap Redis's memory below what it uses now: every write is refused (OOM)."""
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)
    with pytest.raises(redis_lib.ResponseError, match="used memory > 'maxmemory'"):
        client.set("probe", "x")


def _rows(ctx) -> tuple[int, int]:
    with ctx.db.session() as session:
        return (
            session.scalar(select(func.count()).select_from(TaskRow)),
            session.scalar(select(func.count()).select_from(TaskTransitionRow)),
        )


def test_a_submit_to_a_full_redis_is_503_and_leaves_nothing_behind(ctx_full, auth):
    ctx, client = ctx_full
    api = create_app(context=ctx).test_client()
    assert api.post("/api/task", json={"type": "echo"}, headers=auth()).status_code == 201
    before = _rows(ctx)
    jobs_before = list(ctx.queue.jobs)
    _fill(client)

    response = api.post("/api/task", json={"type": "echo", "payload": {"n": 1}}, headers=auth())
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    body = response.get_json()
    assert body["error"] == "redis_full"
    assert "Redis refuses writes" in body["message"]
    assert _rows(ctx) == before  # no task row, no transition row
    assert ctx.queue.jobs == jobs_before  # nothing enqueued

    client.config_set("maxmemory", 0)  # room again: the same request goes through
    again = api.post("/api/task", json={"type": "echo", "payload": {"n": 1}}, headers=auth())
    assert again.status_code == 201
    assert _rows(ctx)[0] == before[0] + 1


def test_other_writes_to_a_full_redis_are_503_too(ctx_full, auth):
    ctx, client = ctx_full
    api = create_app(context=ctx).test_client()
    created = api.post("/api/task", json={"type": "echo"}, headers=auth()).get_json()
    _fill(client)
    response = api.post(f"/api/task/{created['id']}/cancel", headers=auth())
    assert response.status_code == 503, response.get_json()
    assert response.get_json()["error"] == "redis_full"
    assert api.get(f"/api/task/{created['id']}", headers=auth()).status_code == 200  # reads still work
