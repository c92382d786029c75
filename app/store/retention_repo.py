"""Deleting finished tasks past the retention period, a bounded batch per statement.

A task's attempts and transitions, and the dependency edges it has as a dependent, go
with it (``ON DELETE CASCADE``; SQLite enforces it through ``PRAGMA foreign_keys``).
Kept whatever their age:

- a task an unfinished task depends on (its release reads the dependency's status);
- a task of a job that still has a task unfinished or finished after the cutoff (a
  job's status and counts are read from its tasks: a job goes whole or not at all).

A job whose tasks are all gone is deleted too. Statistics rollups are not touched.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, or_, select
from sqlalchemy.orm import aliased

from app.core.states import FINAL_STATUSES
from app.store.db import Database
from app.store.models import JobRow, TaskDependencyRow, TaskRow

FINAL = sorted(status.value for status in FINAL_STATUSES)


def _deletable(before: datetime) -> ColumnElement[bool]:
    """The condition on ``tasks`` (correlated) for a row that may go."""
    dependent = aliased(TaskRow)
    awaited = (
        select(TaskDependencyRow.task_id)
        .join(dependent, dependent.id == TaskDependencyRow.task_id)
        .where(TaskDependencyRow.depends_on_id == TaskRow.id, dependent.status.not_in(FINAL))
        .exists()
    )
    sibling = aliased(TaskRow)
    job_not_done = (
        select(sibling.id)
        .where(
            sibling.job_id == TaskRow.job_id,
            or_(sibling.status.not_in(FINAL), sibling.finished_at.is_(None), sibling.finished_at >= before),
        )
        .exists()
    )
    return and_(
        TaskRow.finished_at < before,
        TaskRow.status.in_(FINAL),
        ~awaited,
        or_(TaskRow.job_id.is_(None), ~job_not_done),
    )


def purge_finished(db: Database, before: datetime, limit: int) -> tuple[int, int]:
    """Delete up to ``limit`` tasks finished before ``before`` (oldest first), in one
    transaction; (tasks deleted, jobs deleted)."""
    with db.session() as session:
        rows = session.execute(
            select(TaskRow.id, TaskRow.job_id)
            .where(_deletable(before))
            .order_by(TaskRow.finished_at)
            .limit(limit)
        ).all()
        if not rows:
            return 0, 0
        ids = [task_id for task_id, _ in rows]
        # The condition again: a task retried or newly depended on since the select stays.
        tasks = session.execute(
            delete(TaskRow)
            .where(TaskRow.id.in_(ids), _deletable(before))
            .execution_options(synchronize_session=False)
        ).rowcount
        job_ids = sorted({job_id for _, job_id in rows if job_id})
        jobs = 0
        if job_ids:
            has_tasks = select(TaskRow.id).where(TaskRow.job_id == JobRow.id).exists()
            jobs = session.execute(
                delete(JobRow)
                .where(JobRow.id.in_(job_ids), ~has_tasks)
                .execution_options(synchronize_session=False)
            ).rowcount
    return tasks, jobs
