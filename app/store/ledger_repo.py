"""The database's side of the slot ledger: which attempts are running, on which server.

An attempt is running when its task is PROCESSING at that attempt on that server and
the attempt has not ended (``finished_at`` NULL): an attempt row left open by a task
that moved on is not running, and neither is a PROCESSING row whose attempt row was
never written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from app.core.clock import datetime_to_ms, ms_to_datetime
from app.core.slot_ledger import RunningAttempt
from app.core.states import TaskStatus
from app.store.models import TaskAttemptRow, TaskRow


def _running() -> Any:
    """task_attempts joined to their task, where the attempt is running."""
    return and_(
        TaskAttemptRow.task_id == TaskRow.id,
        TaskAttemptRow.attempt == TaskRow.attempts,
        TaskAttemptRow.server_id == TaskRow.server_id,
        TaskAttemptRow.finished_at.is_(None),
        TaskRow.status == TaskStatus.PROCESSING.value,
    )


def running_units(session: Session, started_by_ms: int, cost_of: Callable[[str], int]) -> dict[str, int]:
    """Slot units of the attempts running on each server that started at or before
    ``started_by_ms`` (one grouped query; ``cost_of``: a task type's units)."""
    query = (
        select(TaskAttemptRow.server_id, TaskRow.type, func.count())
        .join(TaskRow, _running())
        .where(TaskAttemptRow.started_at <= ms_to_datetime(started_by_ms))
        .group_by(TaskAttemptRow.server_id, TaskRow.type)
    )
    units: dict[str, int] = {}
    for server_id, task_type, n in session.execute(query):
        units[server_id] = units.get(server_id, 0) + n * cost_of(task_type)
    return units


def running_attempts(
    session: Session, server_ids: Iterable[str], cost_of: Callable[[str], int]
) -> list[RunningAttempt]:
    """Every attempt running on these servers."""
    query = (
        select(TaskAttemptRow.server_id, TaskAttemptRow.task_id, TaskAttemptRow.attempt, TaskRow.type)
        .add_columns(TaskAttemptRow.started_at)
        .join(TaskRow, _running())
        .where(TaskAttemptRow.server_id.in_(list(server_ids)))
    )
    return [
        RunningAttempt(
            server_id, task_id, attempt, task_type, cost_of(task_type), datetime_to_ms(started) or 0
        )
        for server_id, task_id, attempt, task_type, started in session.execute(query)
    ]
