"""Limits per client through the API: 429 with Retry-After for a client that submits
too fast or has too many unfinished tasks, nothing stored when refused, and the admin
API /api/clients/{sub}/limits that sets them and publishes fair-share weights."""

from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest

from app import create_app
from app.core.clock import ManualClock
from app.devstack import free_port
from app.services import maintenance
from app.services.context import build_context
from app.store import keys, redis_client
from app.store.db import Database
from app.store.models import ClientLimitRow, JobRow, TaskRow
from tests.conftest import RecordingQueue, make_settings
from tests.services.helpers import register_backend, start_attempt


@pytest.fixture
def admin(auth):
    return auth("root", ("admin",))


@pytest.fixture
def clock(ctx):
    ctx.clock = ManualClock()
    return ctx.clock


def set_limits(client, admin, sub="alice", **body):
    r = client.put(f"/api/clients/{quote(sub, safe='')}/limits", json=body, headers=admin)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def submit(client, auth, sub="alice", **headers):
    return client.post("/api/task", json={"type": "echo"}, headers={**auth(sub), **headers})


def rows(ctx, model, **where):
    with ctx.db.session() as session:
        return session.query(model).filter_by(**where).count()


# -- the rate ----------------------------------------------------------------------------


def test_a_client_past_its_burst_gets_429_with_retry_after_and_nothing_stored(
    client, auth, admin, ctx, clock
):
    set_limits(client, admin, submitsPerSecond=0.5, burst=2)
    assert [submit(client, auth).status_code for _ in range(2)] == [201, 201]
    r = submit(client, auth)
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"  # 1 token at 0.5/s
    body = r.get_json()
    assert body["error"] == "rate_limited" and "0.5 tasks per second" in body["message"]
    assert body["details"]["retryAfterSeconds"] == 2 and body["details"]["burst"] == 2
    assert rows(ctx, TaskRow, owner="alice") == 2
    clock.advance(1.5)  # 0.75 token: half a second more
    assert submit(client, auth).headers["Retry-After"] == "1"
    clock.advance(0.5)
    assert submit(client, auth).status_code == 201
    # Another client has its own bucket.
    assert submit(client, auth, "bob").status_code == 201


def test_the_same_idempotency_key_returns_the_first_task_even_when_the_bucket_is_empty(
    client, auth, admin, clock
):
    set_limits(client, admin, submitsPerSecond=1, burst=1)
    first = submit(client, auth, **{"Idempotency-Key": "k1"})
    assert first.status_code == 201
    again = submit(client, auth, **{"Idempotency-Key": "k1"})
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]
    assert submit(client, auth, **{"Idempotency-Key": "k2"}).status_code == 429


def test_a_job_costs_one_submission_per_task_and_one_too_large_is_refused_with_422(
    client, auth, admin, ctx, clock
):
    set_limits(client, admin, submitsPerSecond=1, burst=5)
    job = {"template": {"type": "echo"}, "items": [1, 2, 3]}
    assert client.post("/api/jobs", json=job, headers=auth()).status_code == 201
    r = client.post("/api/jobs", json=job, headers=auth())  # 2 tokens left
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    assert r.get_json()["details"]["tasks"] == 3
    assert rows(ctx, JobRow, owner="alice") == 1 and rows(ctx, TaskRow, owner="alice") == 3
    huge = client.post(
        "/api/jobs", json={"template": {"type": "echo"}, "items": list(range(6))}, headers=auth()
    )
    assert huge.status_code == 422 and "never pass" in huge.get_json()["message"]
    assert huge.get_json()["details"]["burst"] == 5 and "Retry-After" not in huge.headers
    clock.advance(1)
    assert client.post("/api/jobs", json=job, headers=auth()).status_code == 201


def test_admins_are_limited_too(client, admin, ctx, clock):
    set_limits(client, admin, sub="root", submitsPerSecond=1, burst=1)
    assert client.post("/api/task", json={"type": "echo"}, headers=admin).status_code == 201
    assert client.post("/api/task", json={"type": "echo"}, headers=admin).status_code == 429


# -- the cap of unfinished tasks ---------------------------------------------------------


def test_a_client_at_its_cap_of_unfinished_tasks_gets_429_until_one_finishes(client, auth, admin, ctx, clock):
    set_limits(client, admin, maxUnfinished=3)
    ids = [submit(client, auth).get_json()["id"] for _ in range(3)]
    r = submit(client, auth)
    assert r.status_code == 429 and r.headers["Retry-After"] == "5"
    body = r.get_json()
    assert body["error"] == "too_many_unfinished" and body["details"]["unfinished"] == 3
    assert body["details"]["maxUnfinished"] == 3 and rows(ctx, TaskRow, owner="alice") == 3
    # A job that does not fit whole is refused whole.
    set_limits(client, admin, maxUnfinished=4)
    r = client.post("/api/jobs", json={"template": {"type": "echo"}, "items": [1, 2]}, headers=auth())
    assert r.status_code == 429 and rows(ctx, TaskRow, owner="alice") == 3 and rows(ctx, JobRow) == 0
    assert client.post(f"/api/task/{ids[0]}/cancel", headers=auth()).status_code == 200
    clock.advance(1)  # a refused client is recounted at most once a second
    r = client.post("/api/jobs", json={"template": {"type": "echo"}, "items": [1, 2]}, headers=auth())
    assert r.status_code == 201, r.get_json()
    usage = client.get("/api/clients/alice/limits", headers=admin).get_json()["usage"]
    assert usage["unfinished"] == 4 and usage["unfinishedCounted"] == 4


def test_a_manual_retry_needs_room_under_its_owners_cap(client, auth, admin, ctx, clock):
    register_backend(ctx, 9)
    body = {"type": "echo", "capabilities": ["echo"], "async": True, "maxRetries": 0}
    task_id = client.post("/api/task", json=body, headers=auth()).get_json()["id"]
    start_attempt(ctx, task_id)
    failed = client.put(ctx.tokens.url("", task_id, 1), json={"status": "FAILED", "error": "no"})
    assert failed.get_json()["status"] == "FAILED"
    submit(client, auth)
    set_limits(client, admin, maxUnfinished=1)
    clock.advance(1)
    r = client.post(f"/api/task/{task_id}/retry", headers=auth())
    assert r.status_code == 429 and r.get_json()["error"] == "too_many_unfinished"
    set_limits(client, admin, maxUnfinished=2)
    assert client.post(f"/api/task/{task_id}/retry", headers=auth()).status_code == 200


def test_the_cap_survives_redis_losing_its_data(client, auth, admin, ctx, clock):
    set_limits(client, admin, maxUnfinished=2)
    submit(client, auth), submit(client, auth)
    ctx.redis.flushall()
    r = submit(client, auth)
    assert r.status_code == 429 and r.get_json()["details"]["unfinished"] == 2


def test_without_redis_a_submission_is_stored_unchecked(sqlite_url, auth):
    """Tasks are accepted durably while Redis is down (the orphan sweep starts them):
    the limits, which live in Redis, must not turn that into a 503."""
    dead = redis_client.connect(f"redis://127.0.0.1:{free_port()}/0")  # the app's own retry rules
    ctx = build_context(
        make_settings(sqlite_url), RecordingQueue(), redis_client=dead, db=Database(sqlite_url)
    )
    r = (
        create_app(context=ctx)
        .test_client()
        .post("/api/task", json={"type": "echo"}, headers=auth("offline"))
    )
    assert r.status_code == 201, r.get_json()
    assert rows(ctx, TaskRow, owner="offline") == 1


def test_concurrent_submits_never_pass_the_cap(real_ctx, auth, admin):
    """Real Redis and Postgres, 8 threads: exactly the cap is stored, however they race."""
    app = create_app(context=real_ctx)
    set_limits(app.test_client(), admin, maxUnfinished=25)

    def submit_many(_: int) -> list[int]:
        client = app.test_client()
        statuses = [submit(client, auth).status_code for _ in range(8)]
        job = {"template": {"type": "echo"}, "items": [1, 2, 3]}
        return statuses + [client.post("/api/jobs", json=job, headers=auth()).status_code]

    with ThreadPoolExecutor(8) as pool:
        statuses = [s for batch in pool.map(submit_many, range(8)) for s in batch]
    assert set(statuses) == {201, 429}
    assert rows(real_ctx, TaskRow, owner="alice") == 25


# -- the admin API -----------------------------------------------------------------------


def test_limits_are_set_read_and_reset_with_the_defaults_in_force_elsewhere(client, admin, ctx):
    got = client.get("/api/clients/alice/limits", headers=admin).get_json()
    assert got["stored"] == {"submitsPerSecond": None, "burst": None, "maxUnfinished": None, "weight": None}
    assert got["effective"] == {
        "submitsPerSecond": 1000.0,
        "burst": 20000,
        "maxUnfinished": 100000,
        "weight": 1,
    }
    assert got["usage"] == {"tokens": None, "unfinished": 0, "unfinishedCounted": None}
    put = set_limits(client, admin, submitsPerSecond=2.5, weight=3)
    assert put["stored"]["submitsPerSecond"] == 2.5 and put["stored"]["weight"] == 3
    assert put["effective"]["burst"] == 20000 and put["effective"]["weight"] == 3
    put = set_limits(client, admin, burst=10, weight=None)  # others kept; null resets
    assert put["stored"] == {"submitsPerSecond": 2.5, "burst": 10, "maxUnfinished": None, "weight": None}
    assert ctx.redis.hget(keys.CLIENT_WEIGHTS, "alice") is None
    r = client.delete("/api/clients/alice/limits", headers=admin)
    assert r.status_code == 200 and r.get_json()["stored"]["burst"] is None
    assert rows(ctx, ClientLimitRow) == 0
    assert client.delete("/api/clients/alice/limits", headers=admin).status_code == 200  # already


def test_a_sub_with_slashes_at_signs_and_spaces_is_addressable(client, admin, auth, ctx):
    sub = "team/ci@example.com ü"
    set_limits(client, admin, sub=sub, weight=4, burst=1, submitsPerSecond=0.01)
    assert ctx.redis.hget(keys.CLIENT_WEIGHTS, sub) == "4"
    for path in (quote(sub, safe=""), quote(sub, safe="/@")):
        got = client.get(f"/api/clients/{path}/limits", headers=admin).get_json()
        assert got["sub"] == sub and got["stored"]["weight"] == 4
    assert submit(client, auth, sub).status_code == 201
    assert submit(client, auth, sub).status_code == 429  # its burst of 1 applies to it
    client.delete(f"/api/clients/{quote(sub, safe='')}/limits", headers=admin)
    assert ctx.redis.hget(keys.CLIENT_WEIGHTS, sub) is None


@pytest.mark.parametrize(
    "body",
    [
        {"submitsPerSecond": 0},
        {"submitsPerSecond": 0.0001},
        {"submitsPerSecond": -1},
        {"submitsPerSecond": "5"},
        {"submitsPerSecond": True},
        {"submitsPerSecond": 1e9},
        {"burst": 0},
        {"burst": 2.5},
        {"maxUnfinished": 0},
        {"weight": 0},
        {"weight": 1001},
        {"weight": 1.5},
        {"other": 1},
        [],
    ],
)
def test_invalid_limits_are_422_with_details_and_change_nothing(client, admin, ctx, body):
    r = client.put("/api/clients/alice/limits", json=body, headers=admin)
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["error"] == "validation_error" and r.get_json()["details"]
    assert rows(ctx, ClientLimitRow) == 0


def test_only_admins_may_read_or_set_client_limits(client, auth):
    for method in ("get", "put", "delete"):
        r = getattr(client, method)("/api/clients/alice/limits", json={"burst": 5}, headers=auth("alice"))
        assert r.status_code == 403
        assert getattr(client, method)("/api/clients/alice/limits", json={"burst": 5}).status_code == 401


def test_a_sub_longer_than_the_column_is_422(client, admin):
    r = client.get(f"/api/clients/{'x' * 256}/limits", headers=admin)
    assert r.status_code == 422 and r.get_json()["details"]["sub"]


def test_weights_are_published_again_after_redis_loses_its_data(client, admin, ctx):
    set_limits(client, admin, sub="alice", weight=3)
    set_limits(client, admin, sub="bob", weight=2, burst=5)
    set_limits(client, admin, sub="carol", burst=5)  # no weight of its own
    ctx.redis.flushall()
    maintenance.reconcile(ctx)
    assert ctx.redis.hgetall(keys.CLIENT_WEIGHTS) == {"alice": "3", "bob": "2"}
