"""The migrations against the models, on SQLite and Postgres: head has every column the
models declare, 0004 goes up and down without touching the rows it finds, and 0009
flags the tasks that existing ones depend on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from app.store.models import Base
from migrations import alembic_config, upgrade
from tests.servers import create_database

TASK = (
    "INSERT INTO tasks (id, owner, type, priority, payload, capabilities, mode, max_retries,"
    " timeout_s, status, version, attempts, retry_base, progress, created_at, updated_at)"
    " VALUES ('t1', 'alice', 'echo', 5, '{\"a\": 1}', '[]', 'sync', 3, 60, 'PROCESSING', 2, 1, 0, 0,"
    " '2026-01-01 00:00:00+00:00', '2026-01-01 00:00:00+00:00')"
)
ATTEMPT = (
    "INSERT INTO task_attempts (task_id, attempt, server_id, started_at)"
    " VALUES ('t1', 1, 's1', '2026-01-01 00:00:00+00:00')"
)


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A database with no tables yet (not the shared test database)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
    else:
        server_url = request.getfixturevalue("postgres_url").rsplit("/", 1)[0]
        yield create_database(server_url, "taskfleet_migrations")


def _columns(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {column["name"] for column in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def _run(url: str, *statements: str) -> list:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            rows = [conn.execute(text(s)) for s in statements]
            return [list(r) if r.returns_rows else None for r in rows]
    finally:
        engine.dispose()


def test_the_migrated_schema_is_the_models_schema(empty_url):
    upgrade(empty_url)
    engine = create_engine(empty_url)
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
    finally:
        engine.dispose()
    assert diffs == []


def test_0004_adds_and_drops_the_metadata_columns_keeping_the_rows(empty_url):
    upgrade(empty_url, "0003")
    _run(empty_url, TASK, ATTEMPT)
    upgrade(empty_url, "0004")
    assert "metadata" in _columns(empty_url, "tasks") and "metadata" in _columns(empty_url, "task_attempts")
    (tasks, attempts) = _run(
        empty_url, "SELECT id, metadata FROM tasks", "SELECT attempt, metadata FROM task_attempts"
    )
    assert tasks == [("t1", None)] and attempts == [(1, None)]
    command.downgrade(alembic_config(empty_url), "0003")
    assert "metadata" not in _columns(empty_url, "tasks") | _columns(empty_url, "task_attempts")
    (tasks, attempts) = _run(empty_url, "SELECT id FROM tasks", "SELECT attempt FROM task_attempts")
    assert tasks == [("t1",)] and attempts == [(1,)]
    upgrade(empty_url)


def test_0009_flags_the_tasks_that_existing_tasks_depend_on(empty_url):
    upgrade(empty_url, "0008")
    _run(
        empty_url,
        TASK,
        TASK.replace("'t1'", "'t2'").replace("'PROCESSING'", "'WAITING'"),
        "INSERT INTO task_dependencies (task_id, depends_on_id) VALUES ('t2', 't1')",
    )
    upgrade(empty_url, "0009")
    (flags,) = _run(empty_url, "SELECT id, has_dependents FROM tasks ORDER BY id")
    assert [(task_id, bool(flag)) for task_id, flag in flags] == [("t1", True), ("t2", False)]
    command.downgrade(alembic_config(empty_url), "0008")
    assert "has_dependents" not in _columns(empty_url, "tasks")
    upgrade(empty_url)
