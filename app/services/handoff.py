"""Hand-off: a job on the dispatch queue whose attempt frees a slot starts the task that
slot wakes itself, in its own greenlet, rather than sending a Celery message for
another job to pick up.

A freed slot wakes one waiting task (``waiting.wake``); without hand-off that is a
dispatch message, so every task of a backlog costs a publish, a delivery, an ack and
the task events on top of its own work. Within ``handing_off`` the first dispatch the
job would send (no countdown) is held instead and run by the same job once its own
work is done; the next one it wakes is held in turn, up to ``MAX_HANDOFFS`` per job
and for ``MAX_HANDOFF_S`` after the job started, and not once the worker is shutting
down (``stop``), so a job still ends soon after its own work and a warm shutdown
waits for one call per job, not a chain. Everything else (a second wake-up at once, a
countdown, any job outside a hand-off: the API's callbacks, beat's routines) is sent
as before.

Nothing new can be lost: a held dispatch is a PENDING task out of its waiting line,
which is what a wake-up whose message was never sent leaves too; the orphan sweep
(``maintenance.reconcile``) enqueues such a task if this process dies first. A
dispatch is safe to run twice (a stale attempt does nothing).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from app.core.errors import StoreUnavailable
from app.services.context import Context, DispatchQueue

log = logging.getLogger("taskfleet.dispatch")

#: Dispatches one job runs after its own work before it sends the next by message
#: (so a job ends, and its message is acked, even while a backlog lasts).
MAX_HANDOFFS = 100
#: Seconds after a job started past which it starts no handed-off dispatch.
MAX_HANDOFF_S = 30.0

#: Set when the worker begins to shut down: jobs then hand nothing off.
_stopping = threading.Event()

#: The dispatch (task id, attempt) held for the job running in this greenlet (each
#: greenlet, like each thread, has its own context); None outside ``handing_off``.
_held: ContextVar[list[tuple[str, int]] | None] = ContextVar("taskfleet_handoff", default=None)

T = TypeVar("T")


class HandOffQueue:
    """The worker's ``DispatchQueue``: ``queue``, except that inside ``handing_off`` the
    first immediate dispatch is held for the running job instead of sent."""

    def __init__(self, queue: DispatchQueue) -> None:
        self.queue = queue

    def enqueue(self, task_id: str, attempt: int, countdown_s: float = 0) -> None:
        held = _held.get()
        if held is not None and not held and not countdown_s and not _stopping.is_set():
            held.append((task_id, attempt))
            return
        self.queue.enqueue(task_id, attempt, countdown_s)

    def call_later(self, job: str, args: list[Any], countdown_s: float = 0) -> None:
        self.queue.call_later(job, args, countdown_s)


def handing_off(ctx: Context, work: Callable[[], T], dispatch: Callable[[Context, str, int], Any]) -> T:
    """Run ``work`` (a dispatch, poll or batch job's own), then each dispatch it hands
    off (``dispatch``, with the task id and attempt), one after another; what is still
    held when they end (the cap, or an error) is sent by message."""
    held: list[tuple[str, int]] = []
    token = _held.set(held)
    started = time.monotonic()
    try:
        result = work()
        for _ in range(MAX_HANDOFFS):
            if not held or _stopping.is_set() or time.monotonic() - started > MAX_HANDOFF_S:
                break
            task_id, attempt = held.pop()
            dispatch(ctx, task_id, attempt)
        return result
    finally:
        _held.reset(token)
        for task_id, attempt in held:  # outside the hand-off now: by message
            _send(ctx, task_id, attempt)


def stop() -> None:
    """The worker is shutting down: from now on jobs send what they wake by message."""
    _stopping.set()


def _send(ctx: Context, task_id: str, attempt: int) -> None:
    try:
        ctx.queue.enqueue(task_id, attempt)
    except StoreUnavailable:
        log.warning("task %s handed off but not enqueued; the orphan sweep will pick it up", task_id)
