"""Database engine and sessions. Nothing connects at import time."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from app.core.errors import StoreUnavailable

#: Connections a process keeps open per pool, and how many more it may open for a burst.
POOL_SIZE = 15
POOL_OVERFLOW = 25


def make_engine(database_url: str, autocommit: bool = False) -> Engine:
    """An engine for ``database_url``; SQLite gets WAL and a busy timeout so the api and
    the workers can write to one file at once."""
    if database_url.startswith("sqlite"):
        engine = create_engine(
            database_url,
            connect_args={"timeout": 30},
            hide_parameters=True,  # see below
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # No pre-ping (a round trip per checkout): a connection the server dropped fails its
    # first statement and the pool then replaces every connection as old as that one;
    # the hot path's row writes run once more (tasks_repo.follow), other callers treat
    # the failure as an outage (StoreUnavailable). The pool is sized for a gevent worker's bursts
    # so that connections are reused rather than opened and closed per task.
    return create_engine(
        database_url,
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
        isolation_level="AUTOCOMMIT" if autocommit else None,
        pool_timeout=30,
        pool_recycle=3600,
        hide_parameters=True,  # statements' parameters (apiKeys, payloads) never reach logs
    )


def _copy_field(value: Any, is_json: bool) -> str:
    """One field of COPY's text format: \\N for NULL, backslash escapes for the rest."""
    if value is None:
        return "\\N"
    if is_json:
        text = json.dumps(value)
    elif isinstance(value, datetime):
        text = value.isoformat()
    else:
        text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _green() -> bool:
    """Whether psycopg2 waits through a callback (psycogreen under gevent: the API's and
    the worker's processes), where it refuses COPY."""
    from psycopg2 import extensions

    return extensions.get_wait_callback() is not None


def bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (all with the same columns) into ``table`` in the session's
    transaction: with COPY on Postgres (several times faster than multi-row INSERTs for
    thousands of rows) unless psycopg2 is green, with executemany elsewhere."""
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql" or _green():
        session.execute(table.insert(), rows)  # multi-row INSERTs, 1,000 rows each
        return
    names = list(rows[0])
    is_json = [isinstance(table.c[name].type, JSON) for name in names]
    lines = (
        "\t".join(_copy_field(row[name], js) for name, js in zip(names, is_json, strict=True)) + "\n"
        for row in rows
    )
    columns = ", ".join(f'"{name}"' for name in names)
    dbapi = session.connection().connection.dbapi_connection
    assert dbapi is not None
    with dbapi.cursor() as cursor:
        cursor.copy_expert(f"COPY {table.name} ({columns}) FROM STDIN", io.StringIO("".join(lines)))


def dialect_insert(dialect: str) -> Any:
    """``insert`` of the dialect named ``dialect``, so ON CONFLICT is available."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def insert_for(session: Session, model: Any) -> Any:
    """An INSERT for ``model`` in the session's dialect."""
    return dialect_insert(session.get_bind().dialect.name)(model)


@contextmanager
def _outages_reported() -> Iterator[None]:
    """Database errors that mean an outage become ``StoreUnavailable``."""
    try:
        yield
    except OperationalError as exc:
        raise StoreUnavailable("database unavailable") from exc
    except PoolTimeout as exc:
        raise StoreUnavailable("database busy: no free connection") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise StoreUnavailable("database connection lost") from exc
        raise


class Database:
    """Holds the engine and hands out sessions that translate outages into
    ``StoreUnavailable``."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.engine = make_engine(database_url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Postgres: single-statement writes on the hot path use connections that are in
        # autocommit from the start (switching a pooled connection back and forth costs
        # more than a second pool, which opens connections only as they are needed).
        self._autocommit = make_engine(database_url, autocommit=True) if self.is_postgres else None

    @property
    def engines(self) -> list[Engine]:
        """Every engine this holds (each with its own pool)."""
        return [self.engine] + ([self._autocommit] if self._autocommit is not None else [])

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def session(self, snapshot: bool = False) -> Iterator[Session]:
        """A session committed on success and rolled back on error. ``snapshot``: every
        read sees the database at one instant (REPEATABLE READ on Postgres; SQLite
        transactions always do)."""
        session = self._sessions()
        try:
            with _outages_reported():
                if snapshot and self.is_postgres:
                    session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                yield session
                session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A Core connection for the hot path's prebuilt writes. On Postgres it is in
        autocommit, which saves the BEGIN and COMMIT round trips: callers send one
        statement, atomic by itself. Elsewhere it is one transaction, committed on
        success."""
        if self._autocommit is not None:
            with _outages_reported(), self._autocommit.connect() as conn:
                yield conn
            return
        with _outages_reported(), self.engine.connect() as conn, conn.begin():
            yield conn

    def migration_state(self) -> tuple[str | None, str, bool]:
        """(the database's migration, this code's newest, whether the database is behind:
        at none, or at an older migration of this code's history)."""
        from migrations import head, history

        at = self.revision()
        return at, head(), at is None or (at != head() and at in history())

    def revision(self) -> str | None:
        """The migration the database is at (alembic's version table), None before any."""
        with self.session() as session:
            try:
                return session.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except (ProgrammingError, OperationalError) as exc:
                if "alembic_version" not in str(exc.orig):
                    raise  # not the missing table: an outage
                session.rollback()
                return None

    def dispose(self) -> None:
        for engine in self.engines:
            engine.dispose()
