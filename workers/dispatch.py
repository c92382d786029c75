"""The dispatch job: one Celery task per (task id, attempt)."""

from __future__ import annotations

from workers.celery_app import DISPATCH_TASK, app, worker_context


@app.task(name=DISPATCH_TASK, ignore_result=True)
def dispatch(task_id: str, attempt: int) -> str:
    """Dispatch the attempt after ``attempt`` of ``task_id``; stale jobs do nothing."""
    from app.services.dispatch import dispatch as run

    return run(worker_context(), task_id, attempt).value
