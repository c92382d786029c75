"""Durable server records."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.store.db import Database
from app.store.models import ServerRow, SettingRow

#: Seconds a process trusts its cached copy of a server's endpoint and key.
ENDPOINT_TTL_S = 5.0


def get(session: Session, server_id: str) -> ServerRow | None:
    return session.get(ServerRow, server_id)


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ServerRow)) or 0


def list_all(session: Session) -> list[ServerRow]:
    return list(session.scalars(select(ServerRow).order_by(ServerRow.id)))


def get_setting(session: Session, key: str) -> str | None:
    row = session.get(SettingRow, key)
    return row.value if row else None


def put_setting(session: Session, key: str, value: str) -> None:
    row = session.get(SettingRow, key)
    if row is None:
        session.add(SettingRow(key=key, value=value))
    else:
        row.value = value


@dataclass(frozen=True)
class Endpoint:
    predict_url: str
    api_key: str | None


class EndpointCache:
    """How to call each server, cached per process for ``ENDPOINT_TTL_S`` so a dispatch
    costs no database read for it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Endpoint | None]] = {}

    def get(self, server_id: str) -> Endpoint | None:
        now = time.monotonic()
        with self._lock:
            cached = self._entries.get(server_id)
        if cached is not None and now - cached[0] < ENDPOINT_TTL_S:
            return cached[1]
        with self.db.session() as session:
            row = get(session, server_id)
            endpoint = None if row is None else Endpoint(row.endpoints["predict"], row.api_key)
        with self._lock:
            self._entries[server_id] = (now, endpoint)
        return endpoint

    def forget(self, server_id: str) -> None:
        with self._lock:
            self._entries.pop(server_id, None)
