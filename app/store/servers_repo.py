"""Durable server records."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store.models import ServerRow


def get(session: Session, server_id: str) -> ServerRow | None:
    return session.get(ServerRow, server_id)


def list_all(session: Session) -> list[ServerRow]:
    return list(session.scalars(select(ServerRow).order_by(ServerRow.id)))
