"""Durable job records: a job's row, and what its tasks' rows say about it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from app.core.clock import datetime_to_ms, ms_to_datetime
from app.core.states import FINAL_STATUSES, TaskStatus
from app.store.models import JobRow, TaskRow, TaskTransitionRow
from app.store.tasks_repo import decode_cursor, encode_cursor


@dataclass(frozen=True)
class JobTally:
    """What a job's tasks' rows say: how many are in each status, and when the last
    one finished."""

    counts: dict[str, int] = field(default_factory=dict)
    last_finished_ms: int | None = None

    @property
    def unfinished(self) -> int:
        return sum(n for status, n in self.counts.items() if status not in FINAL_STATUSES)


@dataclass(frozen=True)
class JobRecord:
    """A job's own row: what was submitted, and whether it was cancelled."""

    id: str
    owner: str
    name: str | None
    total: int
    created_ms: int
    cancelled_ms: int | None = None


def _record(row: JobRow) -> JobRecord:
    return JobRecord(
        id=row.id,
        owner=row.owner,
        name=row.name,
        total=row.total,
        created_ms=datetime_to_ms(row.created_at) or 0,
        cancelled_ms=datetime_to_ms(row.cancelled_at),
    )


def insert(session: Session, job: JobRecord, idempotency_key: str | None) -> None:
    """Add the job's row to the session's transaction (its tasks go in beside it)."""
    session.add(
        JobRow(
            id=job.id,
            owner=job.owner,
            name=job.name,
            total=job.total,
            idempotency_key=idempotency_key,
            created_at=ms_to_datetime(job.created_ms),
        )
    )
    session.flush()


def find_by_idempotency_key(session: Session, owner: str, key: str) -> JobRecord | None:
    row = session.scalars(select(JobRow).where(JobRow.owner == owner, JobRow.idempotency_key == key)).first()
    return None if row is None else _record(row)


def get(session: Session, job_id: str) -> JobRecord | None:
    row = session.get(JobRow, job_id)
    return None if row is None else _record(row)


def tallies(session: Session, job_ids: Iterable[str]) -> dict[str, JobTally]:
    """Each job's counts by status and last finish, in one grouped query."""
    ids = list(job_ids)
    if not ids:
        return {}
    query = (
        select(TaskRow.job_id, TaskRow.status, func.count(), func.max(TaskRow.finished_at))
        .where(TaskRow.job_id.in_(ids))
        .group_by(TaskRow.job_id, TaskRow.status)
    )
    counts: dict[str, dict[str, int]] = {job_id: {} for job_id in ids}
    last: dict[str, int | None] = dict.fromkeys(ids)
    for job_id, status, n, finished in session.execute(query):
        counts[job_id][status] = n
        finished_ms = datetime_to_ms(finished)
        if finished_ms is not None and (last[job_id] is None or finished_ms > (last[job_id] or 0)):
            last[job_id] = finished_ms
    return {job_id: JobTally(counts[job_id], last[job_id]) for job_id in ids}


def task_ids(session: Session, job_id: str) -> list[str]:
    """The job's task ids in item order (ids are made to sort that way: app.core.ids)."""
    return list(session.scalars(select(TaskRow.id).where(TaskRow.job_id == job_id).order_by(TaskRow.id)))


def unfinished_task_ids(session: Session, job_id: str) -> list[str]:
    final = [s.value for s in FINAL_STATUSES]
    return list(
        session.scalars(
            select(TaskRow.id)
            .where(TaskRow.job_id == job_id, TaskRow.status.not_in(final))
            .order_by(TaskRow.id)
        )
    )


def tasks_page(
    session: Session, job_id: str, status: TaskStatus | None, limit: int, after_id: str | None
) -> tuple[list[TaskRow], str | None]:
    """The job's tasks in item order, ``limit`` at a time after ``after_id``."""
    query = select(TaskRow).where(TaskRow.job_id == job_id)
    if status is not None:
        query = query.where(TaskRow.status == status.value)
    if after_id:
        query = query.where(TaskRow.id > after_id)
    rows = list(session.scalars(query.order_by(TaskRow.id).limit(limit + 1)))
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].id
    return rows, None


def list_jobs(
    session: Session, owner: str | None, limit: int, cursor: str | None
) -> tuple[list[JobRecord], str | None]:
    """Newest first, ``limit`` at a time; the cursor continues after the last row."""
    query = select(JobRow)
    if owner is not None:
        query = query.where(JobRow.owner == owner)
    if cursor:
        created, last_id = decode_cursor(cursor)
        query = query.where(
            or_(JobRow.created_at < created, and_(JobRow.created_at == created, JobRow.id < last_id))
        )
    rows = list(session.scalars(query.order_by(JobRow.created_at.desc(), JobRow.id.desc()).limit(limit + 1)))
    if len(rows) > limit:
        rows = rows[:limit]
        return [_record(row) for row in rows], encode_cursor(rows[-1].created_at, rows[-1].id)
    return [_record(row) for row in rows], None


def mark_cancelled(session: Session, job_id: str, at_ms: int) -> bool:
    """Stamp the job cancelled unless it already is; True if this call did."""
    result = session.execute(
        update(JobRow)
        .where(JobRow.id == job_id, JobRow.cancelled_at.is_(None))
        .values(cancelled_at=ms_to_datetime(at_ms))
    )
    return bool(result.rowcount)


def transitions_after(
    session: Session, job_id: str, after_row_id: int, limit: int
) -> list[TaskTransitionRow]:
    """Transitions of the job's tasks with a row id above ``after_row_id``, by row id;
    progress updates (PROCESSING -> PROCESSING) left out."""
    processing = TaskStatus.PROCESSING.value
    return list(
        session.scalars(
            select(TaskTransitionRow)
            .join(TaskRow, TaskRow.id == TaskTransitionRow.task_id)
            .where(
                TaskRow.job_id == job_id,
                TaskTransitionRow.id > after_row_id,
                or_(TaskTransitionRow.from_status.is_(None), TaskTransitionRow.from_status != processing)
                | (TaskTransitionRow.to_status != processing),
            )
            .order_by(TaskTransitionRow.id)
            .limit(limit)
        )
    )
