"""Durable server records: the ``servers`` rows, read and written as ``Server``s (the
ORM row never leaves this module), and the settings table."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.clock import ms_to_datetime
from app.core.server_health import ServerStatus
from app.core.servers import BatchConfig, Server, ServerConfig
from app.store.db import Database
from app.store.models import ServerRow, SettingRow

#: Seconds a process trusts its cached copy of a server's endpoint and key.
ENDPOINT_TTL_S = 5.0


def _server(row: ServerRow) -> Server:
    return Server(
        id=row.id,
        name=row.name,
        endpoints=dict(row.endpoints),
        max_concurrent=row.max_concurrent,
        capabilities=tuple(row.capabilities or ()),
        groups=tuple(row.groups or ()),
        priority=row.priority,
        region=row.region,
        weight=row.weight,
        status=ServerStatus(row.status),
        maintenance=row.maintenance,
        has_api_key=bool(row.api_key),
        timeout_s=row.timeout_s,
        batch=BatchConfig(**row.batch) if row.batch else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
        callback_signature=row.callback_signature,
    )


def get(session: Session, server_id: str) -> Server | None:
    row = session.get(ServerRow, server_id)
    return None if row is None else _server(row)


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ServerRow)) or 0


def list_all(session: Session) -> list[Server]:
    return [_server(row) for row in session.scalars(select(ServerRow).order_by(ServerRow.id))]


def put(session: Session, server_id: str, config: ServerConfig, now_ms: int) -> Server:
    """Create the server, or update it (same id); a draining server is online again."""
    now = ms_to_datetime(now_ms)
    row = session.get(ServerRow, server_id)
    if row is None:
        row = ServerRow(id=server_id, created_at=now, status=ServerStatus.ONLINE.value, maintenance=False)
        session.add(row)
    elif row.status == ServerStatus.DRAINING.value:
        row.status = ServerStatus.ONLINE.value
    row.name = config.name
    row.endpoints = config.endpoints
    if config.api_key is not None:
        row.api_key = config.api_key
    row.max_concurrent = config.max_concurrent
    row.capabilities = list(config.capabilities)
    row.groups = list(config.groups)
    row.priority = config.priority
    row.region = config.region
    row.weight = config.weight
    row.timeout_s = config.timeout_s
    row.batch = None if config.batch is None else asdict(config.batch)
    if config.sets_callback_signature:
        row.callback_signature = config.callback_signature
    row.updated_at = now
    session.flush()
    return _server(row)


def set_status(session: Session, server_id: str, status: ServerStatus, now_ms: int) -> bool | None:
    """Record a status; whether it changed (None: no such server)."""
    row = session.get(ServerRow, server_id)
    if row is None:
        return None
    changed = row.status != status.value
    row.status = status.value
    row.updated_at = ms_to_datetime(now_ms)
    return changed


def set_maintenance(session: Session, server_id: str, enabled: bool, now_ms: int) -> Server | None:
    row = session.get(ServerRow, server_id)
    if row is None:
        return None
    row.maintenance = enabled
    row.updated_at = ms_to_datetime(now_ms)
    session.flush()
    return _server(row)


def delete(session: Session, server_id: str) -> bool:
    row = session.get(ServerRow, server_id)
    if row is None:
        return False
    session.delete(row)
    return True


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
    """How to call one server."""

    predict_url: str
    api_key: str | None
    #: Seconds a call may take at most (None: the attempt's own timeout).
    timeout_s: int | None = None
    status_url: str | None = None
    cancel_url: str | None = None
    batch: BatchConfig | None = None
    #: Every URL it registered (a poll's statusUrl must point at one of their origins).
    urls: tuple[str, ...] = ()
    #: Its own demand for signed callbacks (None: the deployment's).
    callback_signature: str | None = None

    @classmethod
    def of(cls, row: ServerRow) -> Endpoint:
        endpoints = dict(row.endpoints)
        return cls(
            predict_url=endpoints["predict"],
            api_key=row.api_key,
            timeout_s=row.timeout_s,
            status_url=endpoints.get("status"),
            cancel_url=endpoints.get("cancel"),
            batch=BatchConfig(**row.batch) if row.batch else None,
            urls=tuple(endpoints.values()),
            callback_signature=row.callback_signature,
        )


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
            row = session.get(ServerRow, server_id)
            endpoint = None if row is None else Endpoint.of(row)
        with self._lock:
            self._entries[server_id] = (now, endpoint)
        return endpoint

    def forget(self, server_id: str) -> None:
        with self._lock:
            self._entries.pop(server_id, None)
