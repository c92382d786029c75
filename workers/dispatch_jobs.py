"""The jobs that call backends, on the dispatch queue: a dispatch per (task id,
attempt), a poll per due poll, a send per batch whose wait is over. Each then runs the
dispatch its work hands off (``app.services.handoff``)."""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_shutting_down

from app import jobs
from app.extensions import current_context
from app.services import batching, handoff, polling
from app.services.dispatch import dispatch as run
from app.services.handoff import handing_off


@shared_task(name=jobs.DISPATCH, ignore_result=True)
def dispatch(task_id: str, attempt: int) -> str:
    """Dispatch the attempt after ``attempt`` of ``task_id``; stale jobs do nothing."""
    ctx = current_context()
    return handing_off(ctx, lambda: run(ctx, task_id, attempt).value, run)


@shared_task(name=jobs.POLL, ignore_result=True)
def poll(task_id: str) -> str:
    """Read a poll-mode attempt's status once and act on it."""
    ctx = current_context()
    return handing_off(ctx, lambda: polling.poll(ctx, task_id), run)


@shared_task(name=jobs.SEND_BATCH, ignore_result=True)
def send_batch(batch_id: str) -> int:
    """Send a batch whose oldest task has waited long enough."""
    ctx = current_context()
    return handing_off(ctx, lambda: batching.send_due(ctx, batch_id), run)


@worker_shutting_down.connect
def _hand_nothing_off(**_: object) -> None:
    """A warm shutdown waits for running jobs: let each end after its own work."""
    handoff.stop()
