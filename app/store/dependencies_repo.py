"""Dependency edges (``task_dependencies``) and the reads that settle them: each a
single query, found from the dependency's end through its index, never a scan."""

from __future__ import annotations

import functools
from collections.abc import Iterable

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

from app.core.states import TaskStatus
from app.core.task import TaskState
from app.store.db import Database
from app.store.models import TaskDependencyRow, TaskRow, TaskTransitionRow
from app.store.tasks_repo import first_transition_row, mark_has_dependents, task_row_values

#: Ids put in one ``IN (...)`` list at most.
IN_CHUNK = 1000


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(ids), IN_CHUNK):
        yield ids[start : start + IN_CHUNK]


def owners_and_statuses(session: Session, task_ids: list[str]) -> dict[str, tuple[str, TaskStatus]]:
    """(owner, status) of each of ``task_ids`` that exists."""
    found: dict[str, tuple[str, TaskStatus]] = {}
    for chunk in _chunks(task_ids):
        query = select(TaskRow.id, TaskRow.owner, TaskRow.status).where(TaskRow.id.in_(chunk))
        found.update(
            {task_id: (owner, TaskStatus(status)) for task_id, owner, status in session.execute(query)}
        )
    return found


def insert_with_edges(db: Database, state: TaskState, idempotency_key: str | None) -> None:
    """Store one new task, its first transition and an edge to each of its
    ``spec.depends_on``, in one transaction. Raises ``IntegrityError`` when the owner
    already has a task with ``idempotency_key``."""
    # Plain INSERTs, not COPY: a unique violation must surface as ``IntegrityError``.
    with db.session() as session:
        session.execute(TaskRow.__table__.insert(), [task_row_values(state, idempotency_key)])
        session.execute(TaskTransitionRow.__table__.insert(), [first_transition_row(state)])
        session.execute(
            TaskDependencyRow.__table__.insert(),
            [{"task_id": state.id, "depends_on_id": dep} for dep in state.spec.depends_on],
        )
        mark_has_dependents(session, state.spec.depends_on)


def waiting_dependents(db: Database, finished_ids: list[str]) -> list[str]:
    """The WAITING tasks that depend on any of ``finished_ids``. Every final transition
    asks this, mostly to hear "none": one statement on an autocommit connection (on
    Postgres), without a session's BEGIN and COMMIT."""
    found: set[str] = set()
    with db.write_connection() as conn:
        for chunk in _chunks(finished_ids):
            found.update(conn.scalars(_waiting_dependents_query(), {"ids": chunk}))
    return sorted(found)


@functools.cache
def _waiting_dependents_query() -> Select[tuple[str]]:
    """The query of ``waiting_dependents``, built once."""
    return (
        select(TaskDependencyRow.task_id)
        .join(TaskRow, TaskRow.id == TaskDependencyRow.task_id)
        .where(
            TaskDependencyRow.depends_on_id.in_(bindparam("ids", expanding=True)),
            TaskRow.status == TaskStatus.WAITING.value,
        )
    )


def waiting_rows(session: Session, task_ids: list[str]) -> list[TaskRow]:
    """The rows of those of ``task_ids`` that are WAITING."""
    rows: list[TaskRow] = []
    for chunk in _chunks(task_ids):
        rows.extend(
            session.scalars(
                select(TaskRow).where(TaskRow.id.in_(chunk), TaskRow.status == TaskStatus.WAITING.value)
            )
        )
    return rows


def dependency_statuses(session: Session, task_ids: list[str]) -> dict[str, dict[str, TaskStatus | None]]:
    """For each of ``task_ids``: the status of each task it depends on (None: no such
    task any more)."""
    out: dict[str, dict[str, TaskStatus | None]] = {task_id: {} for task_id in task_ids}
    for chunk in _chunks(task_ids):
        query = (
            select(TaskDependencyRow.task_id, TaskDependencyRow.depends_on_id, TaskRow.status)
            .outerjoin(TaskRow, TaskRow.id == TaskDependencyRow.depends_on_id)
            .where(TaskDependencyRow.task_id.in_(chunk))
        )
        for task_id, dep_id, status in session.execute(query):
            out[task_id][dep_id] = TaskStatus(status) if status is not None else None
    return out


def rows_by_id(session: Session, task_ids: list[str]) -> list[TaskRow]:
    rows: list[TaskRow] = []
    for chunk in _chunks(task_ids):
        rows.extend(session.scalars(select(TaskRow).where(TaskRow.id.in_(chunk))))
    return rows
