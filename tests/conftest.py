"""Fixtures: real Redis and Postgres on loopback, fakeredis and SQLite for fast units,
an injected clock, a recording dispatch queue, the app, and a token maker.

A missing server skips the tests that need it locally and fails them in CI (CI=true).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import fakeredis
import pytest
import redis as redis_lib
from sqlalchemy import text

from app import create_app
from app.cli import mint_token
from app.config import Settings
from app.core.clock import ManualClock, SystemClock
from app.demo_backend import DemoBackend
from app.devstack import free_port
from app.services.context import Context, build_context
from app.store.db import Database
from app.store.models import Base
from migrations import upgrade
from tests.servers import RedisServer, create_database, postgres_server, redis_server

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
JWT_SECRET = "test-secret-" + "x" * 40


def _unavailable(what: str, exc: Exception) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required in CI: {exc}")
    pytest.skip(f"{what} unavailable: {exc}")


@dataclass
class RecordingQueue:
    """A dispatch queue that records jobs instead of sending them to Celery; tests run
    the jobs themselves with ``drain``."""

    jobs: list[tuple[str, int, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_enqueue: Callable[[str, int], None] | None = None

    def enqueue(self, task_id: str, attempt: int, countdown_s: float = 0) -> None:
        if self.on_enqueue:
            self.on_enqueue(task_id, attempt)
        with self.lock:
            self.jobs.append((task_id, attempt, countdown_s))

    later: list[tuple[str, list, float]] = field(default_factory=list)

    def call_later(self, job: str, args: list, countdown_s: float = 0) -> None:
        with self.lock:
            self.later.append((job, args, countdown_s))

    def take(self) -> list[tuple[str, int, float]]:
        with self.lock:
            jobs, self.jobs = self.jobs, []
        return jobs


@pytest.fixture(scope="session")
def real_redis() -> Iterator[RedisServer]:
    try:
        with redis_server() as server:
            yield server
    except Exception as exc:  # noqa: BLE001 - reported as skip/fail below
        _unavailable("redis-server", exc)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    try:
        with postgres_server() as url:
            database = create_database(url, "taskfleet_test")
            upgrade(database)
            yield database
    except Exception as exc:  # noqa: BLE001
        _unavailable("PostgreSQL", exc)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'taskfleet.db'}"
    upgrade(url)
    return url


def _truncate(database: Database) -> None:
    with database.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(text(f"DELETE FROM {table.name}"))


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest) -> Iterator[Database]:
    """A migrated, empty database: SQLite and Postgres."""
    url = request.getfixturevalue(f"{request.param}_url")
    database = Database(url)
    _truncate(database)
    yield database
    database.dispose()


@pytest.fixture
def pg_db(postgres_url: str) -> Iterator[Database]:
    database = Database(postgres_url)
    _truncate(database)
    yield database
    database.dispose()


@pytest.fixture(params=["fake", "real"])
def redis(request: pytest.FixtureRequest) -> Iterator[redis_lib.Redis]:
    """An empty Redis: fakeredis and a real server run the same contract tests."""
    if request.param == "fake":
        client = fakeredis.FakeRedis(decode_responses=True)
    else:
        server = request.getfixturevalue("real_redis")
        client = redis_lib.Redis.from_url(server.url, decode_responses=True)
    client.flushall()
    yield client
    client.flushall()
    client.close()


@pytest.fixture
def real_redis_client(real_redis: RedisServer) -> Iterator[redis_lib.Redis]:
    client = redis_lib.Redis.from_url(real_redis.url, decode_responses=True)
    client.flushall()
    yield client
    client.flushall()
    client.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


def make_settings(database_url: str, redis_url: str = "redis://unused", **overrides: object) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        jwt_secret_key=JWT_SECRET,
        port=8000,
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture(params=["fakeredis+sqlite", "redis+postgres"])
def ctx(request: pytest.FixtureRequest, queue: RecordingQueue) -> Iterator[Context]:
    """Services wired to fakeredis+SQLite and to real Redis+Postgres, with real time."""
    if request.param == "fakeredis+sqlite":
        client: redis_lib.Redis = fakeredis.FakeRedis(decode_responses=True)
        database = Database(request.getfixturevalue("sqlite_url"))
    else:
        client = request.getfixturevalue("real_redis_client")
        database = request.getfixturevalue("pg_db")
    client.flushall()
    _truncate(database)
    context = build_context(
        make_settings(database.url), queue, clock=SystemClock(), redis_client=client, db=database
    )
    context.limits.publish([], [], 0)  # as a started taskfleet has: no limits, published
    yield context
    database.dispose()


@pytest.fixture
def real_ctx(real_redis_client: redis_lib.Redis, pg_db: Database, queue: RecordingQueue) -> Context:
    """Services on real Redis and real Postgres (for concurrency tests)."""
    context = build_context(make_settings(pg_db.url), queue, redis_client=real_redis_client, db=pg_db)
    context.limits.publish([], [], 0)  # as a started taskfleet has: no limits, published
    return context


@pytest.fixture
def app(ctx: Context):  # type: ignore[no-untyped-def]
    application = create_app(context=ctx)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def token() -> Callable[..., str]:
    """token(sub="alice", roles=("client",), ttl_s=600) -> a bearer token."""

    def make(sub: str = "alice", roles: tuple[str, ...] = ("client",), ttl_s: int = 600) -> str:
        return mint_token(make_settings("sqlite://"), sub, list(roles), ttl_s)

    return make


@pytest.fixture
def auth(token: Callable[..., str]) -> Callable[..., dict[str, str]]:
    def headers(sub: str = "alice", roles: tuple[str, ...] = ("client",)) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(sub, roles)}"}

    return headers


@contextmanager
def serving_backend(name: str = "test-backend", delay_s: float = 0.05) -> Iterator[tuple[DemoBackend, int]]:
    """A real HTTP backend in a thread; yields (backend, port)."""
    demo = DemoBackend(name, delay_s=delay_s)
    port = free_port()
    server = demo.serve("127.0.0.1", port)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield demo, port
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def backend() -> Iterator[tuple[DemoBackend, int]]:
    """A real HTTP backend in a thread; returns (backend, port)."""
    with serving_backend() as served:
        yield served


ROOT = Path(__file__).resolve().parent.parent
