"""Database engine and sessions. Nothing connects at import time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.core.errors import StoreUnavailable


def make_engine(database_url: str) -> Engine:
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
    return create_engine(
        database_url,
        pool_size=10,
        max_overflow=40,
        pool_pre_ping=True,
        pool_timeout=30,
        hide_parameters=True,  # statements' parameters (apiKeys, payloads) never reach logs
    )


def insert_for(session: Session, model: type) -> Any:
    """An INSERT for ``model`` in the session's dialect, so ON CONFLICT is available."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


class Database:
    """Holds the engine and hands out sessions that translate outages into
    ``StoreUnavailable``."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.engine = make_engine(database_url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self, snapshot: bool = False) -> Iterator[Session]:
        """A session committed on success and rolled back on error. ``snapshot``: every
        read sees the database at one instant (REPEATABLE READ on Postgres; SQLite
        transactions always do)."""
        session = self._sessions()
        try:
            if snapshot and self.engine.dialect.name == "postgresql":
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            yield session
            session.commit()
        except OperationalError as exc:
            session.rollback()
            raise StoreUnavailable("database unavailable") from exc
        except DBAPIError as exc:
            session.rollback()
            if exc.connection_invalidated:
                raise StoreUnavailable("database connection lost") from exc
            raise
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
