"""Durable statistics: hourly rollups, the batches applied to them, hours to recount
from the task records, and the error log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, select
from sqlalchemy.orm import Session

from app.core.clock import datetime_to_ms, ms_to_datetime
from app.core.states import (
    COUNTED_OUTCOMES,
    FAILED_OUTCOMES,
    FINAL_STATUSES,
    RETRYABLE_FINAL_STATUSES,
    AttemptOutcome,
    TaskStatus,
)
from app.core.tally import ALL, BY_SERVER, BY_TYPE, HOUR_MS, MAX_METRICS, METRICS, Tally
from app.store.db import insert_for
from app.store.models import (
    ErrorLogRow,
    StatsDirtyHourRow,
    StatsFlushRow,
    StatsHourlyRow,
    StatsTotalRow,
    TaskAttemptRow,
    TaskRow,
    TaskTransitionRow,
)
from app.store.servers_repo import get_setting, put_setting

#: How long applied batch ids are remembered (a crashed flush is finished long before).
FLUSH_MEMORY_MS = 24 * HOUR_MS
FINAL = tuple(sorted(status.value for status in FINAL_STATUSES))
LAST_CUT_SETTING = "stats.last_cut_ms"
ATTEMPT_COUNTED = tuple(sorted(outcome.value for outcome in COUNTED_OUTCOMES))


def hour_start(hour: int) -> datetime:
    start = ms_to_datetime(hour * HOUR_MS)
    assert start is not None
    return start


def _hour_number(value: datetime) -> int:
    return (datetime_to_ms(value) or 0) // HOUR_MS


# -- applying counters --------------------------------------------------------------


def _add(session: Session, model: type, where: dict[str, Any], counters: dict[str, int]) -> None:
    """Add ``counters`` to the row of ``model`` at ``where`` (created at zero), keeping
    the larger value of ``MAX_METRICS``."""
    table = model.__table__  # type: ignore[attr-defined]
    statement = insert_for(session, model).values(**where, **{m: counters.get(m, 0) for m in METRICS})
    larger = func.max if session.get_bind().dialect.name == "sqlite" else func.greatest
    session.execute(
        statement.on_conflict_do_update(
            index_elements=list(where),
            set_={
                m: larger(table.c[m], statement.excluded[m])
                if m in MAX_METRICS
                else table.c[m] + statement.excluded[m]
                for m in METRICS
            },
        )
    )


def _add_hourly(session: Session, tally: Tally, sign: int = 1) -> None:
    """Add a tally to the hourly rows and to the all-time totals (``sign`` -1 takes it
    away from the totals' sums; maxima stay, they only ever grow)."""
    for (hour, scope, key), counters in tally.buckets.items():
        if sign > 0:
            _add(session, StatsHourlyRow, {"scope": scope, "key": key, "hour": hour_start(hour)}, counters)
    for (scope, key), counters in tally.by_key().items():
        signed = {m: v if m in MAX_METRICS else sign * v for m, v in counters.items()}
        _add(session, StatsTotalRow, {"scope": scope, "key": key}, signed)


def apply_batch(session: Session, batch_id: str, cut_ms: int, tally: Tally, now_ms: int) -> bool:
    """Add a batch to the rollups unless it was added before; True if added now. The
    batch id's row is taken first, so a second flusher of the same batch waits, then
    finds it and adds nothing."""
    taken = session.execute(
        insert_for(session, StatsFlushRow)
        .values(batch_id=batch_id, cut_ms=cut_ms, applied_at=ms_to_datetime(now_ms))
        .on_conflict_do_nothing()
    ).rowcount
    if not taken:
        return False
    _add_hourly(session, tally)
    put_setting(session, LAST_CUT_SETTING, str(max(cut_ms, last_cut_ms(session) or 0)))
    session.execute(delete(StatsFlushRow).where(StatsFlushRow.cut_ms < now_ms - FLUSH_MEMORY_MS))
    return True


def batch_applied(session: Session, batch_id: str) -> bool:
    return session.get(StatsFlushRow, batch_id) is not None


def flushed_since(session: Session, since_ms: int) -> bool:
    """Whether a batch cut at or after ``since_ms`` has been applied."""
    return session.scalar(select(func.count()).where(StatsFlushRow.cut_ms >= since_ms)) != 0


def last_cut_ms(session: Session) -> int | None:
    """When the latest applied batch was cut (kept in settings: batch ids are pruned)."""
    value = get_setting(session, LAST_CUT_SETTING)
    return int(value) if value else None


# -- hours to recount ---------------------------------------------------------------


def mark_dirty(session: Session, hours: list[int], now_ms: int) -> None:
    for hour in hours:
        session.execute(
            insert_for(session, StatsDirtyHourRow)
            .values(hour=hour_start(hour), marked_at=ms_to_datetime(now_ms))
            .on_conflict_do_nothing()
        )


def dirty_hours(session: Session) -> list[int]:
    return sorted(_hour_number(hour) for hour in session.scalars(select(StatsDirtyHourRow.hour)))


def replace_hour(session: Session, hour: int, tally: Tally) -> bool:
    """Replace an hour's rollups with ``tally`` and clear its dirty mark; False (and
    nothing done) if another flusher took the mark first."""
    taken = session.execute(
        delete(StatsDirtyHourRow).where(StatsDirtyHourRow.hour == hour_start(hour))
    ).rowcount
    if not taken:
        return False
    _add_hourly(session, hourly_rows(session, hour), sign=-1)
    session.execute(delete(StatsHourlyRow).where(StatsHourlyRow.hour == hour_start(hour)))
    _add_hourly(session, tally)
    return True


def hourly_rows(session: Session, hour: int) -> Tally:
    """Every rollup row of one hour (all scopes), as a tally."""
    tally = Tally()
    for row in session.scalars(select(StatsHourlyRow).where(StatsHourlyRow.hour == hour_start(hour))):
        tally.add_all((hour, row.scope, row.key), {m: getattr(row, m) for m in METRICS})
    return tally


def all_time(session: Session, scope: str, key: str | None = None) -> dict[str, dict[str, int]]:
    """All-time counters of ``scope`` per key, one row each."""
    query = select(StatsTotalRow).where(StatsTotalRow.scope == scope)
    if key is not None:
        query = query.where(StatsTotalRow.key == key)
    return {row.key: {m: getattr(row, m) for m in METRICS} for row in session.scalars(query)}


def oldest_task_ms(session: Session) -> int | None:
    return datetime_to_ms(session.scalar(select(func.min(TaskRow.created_at))))


def recount(session: Session, hour: int) -> Tally:
    """The counters of ``hour`` computed from the task records (the truth the Redis
    counters keep up with; see ``app.core.tally`` for what each counts)."""
    start, end = hour_start(hour), hour_start(hour + 1)
    tally = Tally()
    for task_type, n in session.execute(
        select(TaskRow.type, func.count())
        .where(TaskRow.created_at >= start, TaskRow.created_at < end)
        .group_by(TaskRow.type)
    ):
        tally.add((hour, ALL, ""), "created", n)
        tally.add((hour, BY_TYPE, task_type), "created", n)
    events = session.execute(
        select(
            TaskTransitionRow.from_status,
            TaskTransitionRow.to_status,
            TaskRow.type,
            TaskAttemptRow.outcome,
            TaskAttemptRow.started_at,
            TaskAttemptRow.finished_at,
        )
        .join(TaskRow, TaskRow.id == TaskTransitionRow.task_id)
        .outerjoin(
            TaskAttemptRow,
            and_(
                TaskAttemptRow.task_id == TaskTransitionRow.task_id,
                TaskAttemptRow.attempt == TaskTransitionRow.attempt,
            ),
        )
        .where(
            TaskTransitionRow.at >= start,
            TaskTransitionRow.at < end,
            TaskTransitionRow.to_status.in_((*FINAL, TaskStatus.PENDING.value)),
        )
    )
    for source, target, task_type, outcome, started, finished in events:
        counts: dict[str, int] = {}
        if target in FINAL:
            counts[target.lower()] = 1
            if target == TaskStatus.COMPLETED and started is not None and finished is not None:
                counts["duration_ms"] = _ms(finished) - _ms(started)
        elif source in RETRYABLE_FINAL_STATUSES or (
            source == TaskStatus.PROCESSING and outcome in FAILED_OUTCOMES
        ):
            counts["retried"] = 1
        tally.add_all((hour, ALL, ""), counts)
        tally.add_all((hour, BY_TYPE, task_type), counts)
    attempts = session.execute(
        select(
            TaskAttemptRow.server_id,
            TaskAttemptRow.outcome,
            TaskAttemptRow.started_at,
            TaskAttemptRow.finished_at,
        ).where(
            TaskAttemptRow.finished_at >= start,
            TaskAttemptRow.finished_at < end,
            TaskAttemptRow.outcome.in_(ATTEMPT_COUNTED),
        )
    )
    for server_id, outcome, started, finished in attempts:
        bucket = (hour, BY_SERVER, server_id)
        tally.add(bucket, "attempts_ok" if outcome == AttemptOutcome.COMPLETED else "attempts_failed", 1)
        tally.add(bucket, "attempt_ms", _ms(finished) - _ms(started))
        tally.add(bucket, "last_active_ms", _ms(finished))
    return tally


def _ms(value: datetime) -> int:
    return datetime_to_ms(value) or 0


# -- reading rollups ----------------------------------------------------------------


def _range(query: Any, first_hour: int | None, end_hour: int | None, skip_hours: list[int]) -> Any:
    if first_hour is not None:
        query = query.where(StatsHourlyRow.hour >= hour_start(first_hour))
    if end_hour is not None:
        query = query.where(StatsHourlyRow.hour < hour_start(end_hour))
    if skip_hours:
        query = query.where(StatsHourlyRow.hour.not_in([hour_start(h) for h in skip_hours]))
    return query


def _columns() -> list[Any]:
    return [
        (func.max if name in MAX_METRICS else func.sum)(getattr(StatsHourlyRow, name)).label(name)
        for name in METRICS
    ]


def totals_by_key(
    session: Session,
    scope: str,
    first_hour: int | None,
    end_hour: int | None,
    skip_hours: list[int],
    key: str | None = None,
) -> dict[str, dict[str, int]]:
    """Counters of ``scope`` added over the hours in range, per key."""
    query = select(StatsHourlyRow.key, *_columns()).where(StatsHourlyRow.scope == scope)
    if key is not None:
        query = query.where(StatsHourlyRow.key == key)
    query = _range(query, first_hour, end_hour, skip_hours).group_by(StatsHourlyRow.key)
    return {
        row.key: {name: int(getattr(row, name) or 0) for name in METRICS} for row in session.execute(query)
    }


def hourly(session: Session, first_hour: int, end_hour: int, skip_hours: list[int]) -> Tally:
    """The ``a`` rollup rows of the hours in range, as a tally."""
    query = _range(
        select(StatsHourlyRow).where(StatsHourlyRow.scope == ALL), first_hour, end_hour, skip_hours
    )
    tally = Tally()
    for row in session.scalars(query):
        tally.add_all((_hour_number(row.hour), ALL, ""), {name: getattr(row, name) for name in METRICS})
    return tally


# -- the error log ------------------------------------------------------------------


def record_error(session: Session, error_type: str, message: str, now_ms: int) -> None:
    at = ms_to_datetime(now_ms)
    statement = insert_for(session, ErrorLogRow).values(
        error_type=error_type[:64], message=message[:500], count=1, first_seen=at, last_seen=at
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["error_type", "message"],
            set_={"count": ErrorLogRow.__table__.c.count + 1, "last_seen": statement.excluded.last_seen},
        )
    )


def errors(session: Session, limit: int, error_type: str | None = None) -> list[ErrorLogRow]:
    query = select(ErrorLogRow)
    if error_type:
        query = query.where(ErrorLogRow.error_type == error_type)
    return list(
        session.scalars(query.order_by(ErrorLogRow.last_seen.desc(), ErrorLogRow.id.desc()).limit(limit))
    )
