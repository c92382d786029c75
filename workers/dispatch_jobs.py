"""The dispatch job: one Celery task per (task id, attempt)."""

from __future__ import annotations

from celery import shared_task

from app import jobs
from app.extensions import current_context
from app.services.dispatch import dispatch as run


@shared_task(name=jobs.DISPATCH, ignore_result=True)
def dispatch(task_id: str, attempt: int) -> str:
    """Dispatch the attempt after ``attempt`` of ``task_id``; stale jobs do nothing."""
    return run(current_context(), task_id, attempt).value
