"""/metrics served from a snapshot shared by concurrent scrapers, behind an optional
bearer token; /api/ready saying what is missing in words, never a password."""

from __future__ import annotations

import threading

import fakeredis
import pytest
import redis as redis_lib
from sqlalchemy import text

from app import create_app
from app.core.clock import ManualClock
from app.core.errors import StoreUnavailable
from app.devstack import free_port
from app.services import metrics as metrics_service
from app.services.context import build_context
from app.store.db import Database
from tests.conftest import RecordingQueue, make_settings


@pytest.fixture
def counted(monkeypatch):
    """Counts the computations of the metrics snapshot (each one reads the stores)."""
    calls = []
    real = metrics_service.snapshot

    def snapshot(ctx):
        calls.append(1)
        return real(ctx)

    monkeypatch.setattr(metrics_service, "snapshot", snapshot)
    return calls


def _app(sqlite_url, clock, **overrides):
    ctx = build_context(
        make_settings(sqlite_url, **overrides),
        RecordingQueue(),
        clock=clock,
        redis_client=fakeredis.FakeRedis(decode_responses=True),
        db=Database(sqlite_url),
    )
    return create_app(context=ctx)


def test_concurrent_scrapes_within_the_max_age_share_one_computation(sqlite_url, counted):
    clock = ManualClock()
    app = _app(sqlite_url, clock, metrics_max_age_s=5.0)
    answers: list[tuple[int, bytes]] = []
    start = threading.Barrier(16)

    def scrape() -> None:
        client = app.test_client()
        start.wait()
        response = client.get("/metrics")
        answers.append((response.status_code, response.get_data()))

    threads = [threading.Thread(target=scrape) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(answers) == 16 and {status for status, _ in answers} == {200}
    assert len({body for _, body in answers}) == 1
    assert len(counted) == 1
    clock.advance(4.9)
    assert app.test_client().get("/metrics").status_code == 200
    assert len(counted) == 1  # still younger than 5 s
    clock.advance(0.1)
    assert app.test_client().get("/metrics").status_code == 200
    assert len(counted) == 2


def test_a_failed_computation_is_not_cached(sqlite_url, monkeypatch):
    app = _app(sqlite_url, ManualClock())
    real, calls = metrics_service.snapshot, []

    def snapshot(ctx):
        calls.append(1)
        if len(calls) == 1:
            raise StoreUnavailable("redis unavailable")
        return real(ctx)

    monkeypatch.setattr(metrics_service, "snapshot", snapshot)
    first = app.test_client().get("/metrics")
    assert first.status_code == 503 and first.headers["Retry-After"]
    assert app.test_client().get("/metrics").status_code == 200  # computed again at once
    assert len(calls) == 2


def test_metrics_token_when_set_is_required_and_compared_whole(sqlite_url):
    app = _app(sqlite_url, ManualClock(), metrics_token="scrape-secret")
    client = app.test_client()
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    wrongs = ("Bearer scrape-secre", "Bearer scrape-secret-and-more", "Basic scrape-secret", "scrape-secret")
    for wrong in wrongs:
        assert client.get("/metrics", headers={"Authorization": wrong}).status_code == 401, wrong
    ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert ok.status_code == 200 and b"taskfleet_tasks" in ok.get_data()


def test_without_a_token_metrics_stay_open(sqlite_url):
    assert _app(sqlite_url, ManualClock()).test_client().get("/metrics").status_code == 200


def test_ready_names_an_unreachable_redis_by_address_without_its_password(sqlite_url):
    port = free_port()
    url = f"redis://:hunter2-secret@127.0.0.1:{port}/0"
    dead = redis_lib.Redis.from_url(url, decode_responses=True, socket_connect_timeout=0.5)
    ctx = build_context(
        make_settings(sqlite_url, redis_url=url), RecordingQueue(), redis_client=dead, db=Database(sqlite_url)
    )
    response = create_app(context=ctx).test_client().get("/api/ready")
    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert checks["redis"] == f"Redis is unreachable at redis://127.0.0.1:{port}"
    assert checks["database"] == "ok"
    assert "hunter2" not in response.get_data(as_text=True)
    assert "Error" not in response.get_data(as_text=True)  # no exception class names


def test_ready_says_the_database_is_unreachable(real_redis_client):
    url = f"postgresql+psycopg2://taskfleet:pg-secret@127.0.0.1:{free_port()}/none"
    ctx = build_context(
        make_settings(url), RecordingQueue(), redis_client=real_redis_client, db=Database(url)
    )
    response = create_app(context=ctx).test_client().get("/api/ready")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"] == "the database is unreachable"
    assert "pg-secret" not in response.get_data(as_text=True)


def test_ready_says_when_migrations_are_behind_and_accepts_newer_ones(sqlite_url):
    database = Database(sqlite_url)
    ctx = build_context(
        make_settings(sqlite_url),
        RecordingQueue(),
        redis_client=fakeredis.FakeRedis(decode_responses=True),
        db=database,
    )
    client = create_app(context=ctx).test_client()
    ctx.workers.beat("celery@w1", ctx.now_ms())
    assert client.get("/api/ready").status_code == 200
    with database.session() as session:
        head = session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    try:
        with database.session() as session:
            session.execute(text("UPDATE alembic_version SET version_num = '0007'"))
        response = client.get("/api/ready")
        assert response.status_code == 503
        assert response.get_json()["checks"]["database"].startswith(
            f"migrations are not at head (the database is at 0007, this code needs {head})"
        )
        with database.session() as session:  # a later deploy's migration: still ready
            session.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
        assert client.get("/api/ready").status_code == 200
    finally:
        with database.session() as session:
            session.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
