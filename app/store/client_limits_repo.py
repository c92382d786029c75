"""Durable per-client limits (the ``client_limits`` rows, read and written as
``StoredLimits``) and the database's count of a client's unfinished tasks."""

from __future__ import annotations

import threading
from dataclasses import fields

from cachetools import TTLCache
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.client_limits import UNFINISHED_STATUSES, StoredLimits
from app.core.clock import ms_to_datetime
from app.store.db import Database
from app.store.models import ClientLimitRow, TaskRow

#: Seconds a process trusts its copy of a client's limits (a submit reads no row); an
#: admin's change reaches every process within this.
CACHE_TTL_S = 5.0
#: Clients whose limits a process keeps at most.
CACHE_SIZE = 10_000
#: StoredLimits fields -> ClientLimitRow columns.
_COLUMNS = {
    "submits_per_s": "submits_per_second",
    "burst": "burst",
    "max_unfinished": "max_unfinished",
    "weight": "weight",
}


def _stored(row: ClientLimitRow | None) -> StoredLimits:
    if row is None:
        return StoredLimits()
    return StoredLimits(**{name: getattr(row, column) for name, column in _COLUMNS.items()})


def get(session: Session, sub: str) -> StoredLimits:
    """What an admin set for ``sub`` (every field None if nothing)."""
    return _stored(session.get(ClientLimitRow, sub))


def put(session: Session, sub: str, limits: StoredLimits, now_ms: int) -> None:
    """Store ``limits`` for ``sub``; limits with nothing set remove its row."""
    row = session.get(ClientLimitRow, sub)
    if limits.is_empty:
        if row is not None:
            session.delete(row)
        return
    if row is None:
        row = ClientLimitRow(sub=sub)
        session.add(row)
    for f in fields(limits):
        setattr(row, _COLUMNS[f.name], getattr(limits, f.name))
    row.updated_at = ms_to_datetime(now_ms)


def delete(session: Session, sub: str) -> bool:
    """Remove ``sub``'s row; False if it had none."""
    row = session.get(ClientLimitRow, sub)
    if row is None:
        return False
    session.delete(row)
    return True


def weights(session: Session) -> dict[str, int]:
    """Every weight an admin set, by client."""
    rows = session.execute(
        select(ClientLimitRow.sub, ClientLimitRow.weight).where(ClientLimitRow.weight.is_not(None))
    )
    return {sub: weight for sub, weight in rows}


def count_unfinished(session: Session, owner: str) -> int:
    """The owner's tasks in a status that is not final (index tasks(owner, status))."""
    query = select(func.count()).where(TaskRow.owner == owner, TaskRow.status.in_(list(UNFINISHED_STATUSES)))
    return int(session.scalar(query) or 0)


class LimitsCache:
    """Each client's stored limits, cached per process for ``CACHE_TTL_S``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._entries: TTLCache[str, StoredLimits] = TTLCache(CACHE_SIZE, CACHE_TTL_S)
        self._lock = threading.Lock()

    def get(self, sub: str) -> StoredLimits:
        with self._lock:
            cached = self._entries.get(sub)
        if cached is not None:
            return cached
        with self.db.session() as session:
            stored = get(session, sub)
        with self._lock:
            self._entries[sub] = stored
        return stored

    def forget(self, sub: str) -> None:
        with self._lock:
            self._entries.pop(sub, None)
