"""Durable concurrency limits: the ``concurrency_limits`` rows, read and written as
``Limit``s (the ORM row never leaves this module)."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.clock import datetime_to_ms, ms_to_datetime
from app.core.errors import Conflict
from app.core.limits import DynamicLimit, Limit, LimitConfig
from app.store.models import ConcurrencyLimitRow

#: How a scaling change is written in ``change_reason``: 'from <n>: <why>' (the table has
#: no column for the value before).
_FROM = re.compile(r"^from (\d+): (.*)$", re.DOTALL)
#: Characters ``change_reason`` holds.
REASON_MAX = 200


def _limit(row: ConcurrencyLimitRow) -> Limit:
    match = _FROM.match(row.change_reason)
    config = LimitConfig(
        max_concurrent=row.max_concurrent,
        dynamic=DynamicLimit.from_json(row.dynamic) if row.dynamic else None,
    )
    return Limit(
        type=row.type,
        config=config,
        current=row.current,
        changed_ms=datetime_to_ms(row.changed_at) or 0,
        changed_from=int(match.group(1)) if match else None,
        change_reason=match.group(2) if match else row.change_reason,
    )


def list_all(session: Session) -> list[Limit]:
    rows = session.scalars(select(ConcurrencyLimitRow).order_by(ConcurrencyLimitRow.type))
    return [_limit(row) for row in rows]


def get(session: Session, limit_type: str) -> Limit | None:
    row = session.get(ConcurrencyLimitRow, limit_type)
    return None if row is None else _limit(row)


def put(session: Session, limit_type: str, config: LimitConfig, now_ms: int) -> Limit:
    """Create or replace the limit of ``limit_type``. A replaced dynamic limit keeps its
    value when the new range still holds it; anything else starts at the initial value."""
    now = ms_to_datetime(now_ms)
    row = session.get(ConcurrencyLimitRow, limit_type)
    created = row is None and _insert(session, limit_type, config, now)
    # Created here, or by another admin since the read above (theirs is then replaced).
    row = row or session.get(ConcurrencyLimitRow, limit_type, populate_existing=True)
    if row is None:
        raise Conflict(f"the limit of {limit_type!r} was deleted while being set; try again")
    current = config.clamp(row.current) if config.dynamic and row.dynamic and not created else config.initial
    row.max_concurrent = config.max_concurrent
    row.dynamic = config.dynamic.to_json() if config.dynamic else None
    row.current = current
    row.changed_at = row.updated_at = now
    row.change_reason = "created" if created else "replaced"
    session.flush()
    return _limit(row)


def _insert(session: Session, limit_type: str, config: LimitConfig, now: datetime) -> bool:
    """Insert the limit's row; False when one appeared since it was looked for (two
    admins creating it at once: the second one replaces it rather than failing)."""
    try:
        with session.begin_nested():
            session.add(
                ConcurrencyLimitRow(
                    type=limit_type,
                    current=config.initial,
                    changed_at=now,
                    change_reason="created",
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        return False
    return True


def delete(session: Session, limit_type: str) -> bool:
    row = session.get(ConcurrencyLimitRow, limit_type)
    if row is None:
        return False
    session.delete(row)
    return True


def set_current(session: Session, limit_type: str, old: int, new: int, reason: str, now_ms: int) -> bool:
    """Record a scaling change from ``old`` to ``new`` (False when the row is gone or no
    longer at ``old``: another process moved it first)."""
    row = session.get(ConcurrencyLimitRow, limit_type, with_for_update=True)
    if row is None or row.current != old:
        return False
    row.current = new
    row.changed_at = row.updated_at = ms_to_datetime(now_ms)
    row.change_reason = f"from {old}: {reason}"[:REASON_MAX]
    return True
