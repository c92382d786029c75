"""Knowing that the worker holding a backend call is alive, and recovering the
attempts of workers that died (killed mid-dispatch: their tasks must not wait for
their full timeout)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from app.core.balancing import Verdict
from app.core.errors import Conflict, NotFound, StoreUnavailable
from app.core.states import TaskMode, TaskStatus
from app.core.task import TaskState
from app.services import outcomes
from app.services.context import Context
from app.store.batch_lines import line_of

log = logging.getLogger("taskfleet.liveness")

#: Seconds between heartbeats of a worker holding a backend call.
HEARTBEAT_EVERY_S = 5
#: Seconds a heartbeat lasts: three missed beats and the worker counts as gone.
HEARTBEAT_TTL_S = 15
#: Seconds after an attempt starts before a missing heartbeat counts (the worker sets
#: the first one ``HEARTBEAT_EVERY_S`` after the attempt starts, so a short call, the
#: usual case, costs no heartbeat at all).
LOST_AFTER_S = 20


@contextmanager
def heartbeat(ctx: Context, task_id: str, attempt: int, started_ms: int | None = None) -> Iterator[None]:
    """Keep this attempt's heartbeat fresh while the block runs, every
    ``HEARTBEAT_EVERY_S`` from its start (a thread; a greenlet under the gevent pool).
    An attempt that ``started_ms`` over a beat ago (its start was slow to record) beats
    at once, so ``recover_lost_attempts`` never takes it for lost."""
    stop = threading.Event()
    beaten = threading.Event()
    if started_ms is not None and ctx.now_ms() - started_ms > HEARTBEAT_EVERY_S * 1000:
        ctx.tasks.heartbeat(task_id, attempt, HEARTBEAT_TTL_S)
        beaten.set()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_EVERY_S):
            try:
                ctx.tasks.heartbeat(task_id, attempt, HEARTBEAT_TTL_S)
                beaten.set()
            except StoreUnavailable:
                continue  # Redis is away; the next beat tries again

    thread = threading.Thread(target=beat, name=f"heartbeat-{task_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        if beaten.is_set():
            ctx.tasks.stop_heartbeat(task_id, attempt)


def _held_elsewhere(ctx: Context, state: TaskState) -> bool:
    """Whether something other than a worker's call holds the attempt: the backend (a
    callback attempt), its poll record (a poll attempt being polled), or the batch it
    gathers in."""
    if state.spec.mode is TaskMode.CALLBACK:
        return True
    if state.spec.mode is TaskMode.POLL:
        record = ctx.polls.get(state.id)
        if record is not None and record.attempt == state.attempt:
            return True
    return ctx.batches.contains(line_of(state), state.id, state.attempt)


def recover_lost_attempts(ctx: Context) -> int:
    """Retry elsewhere every attempt a worker held that stopped beating (it was killed
    mid-call, or before a poll or a batch took the attempt over). Callback attempts are
    held by the backend, poll attempts by their poll, gathering ones by their batch:
    their deadline governs them."""
    now, recovered = ctx.now_ms(), 0
    for server_id, task_id, attempt in ctx.fleet.all_leases():
        state = ctx.tasks.get(task_id)
        if (
            state is None
            or state.status is not TaskStatus.PROCESSING
            or state.attempt != attempt
            or state.server_id != server_id
            or now - (state.started_ms or now) < LOST_AFTER_S * 1000
            or ctx.tasks.is_alive(task_id, attempt)
            or _held_elsewhere(ctx, state)
        ):
            continue
        try:
            outcomes.fail(
                ctx,
                task_id,
                attempt,
                "the worker running it was lost",
                verdict=Verdict.NONE,
                error_type="worker_lost",
            )
            recovered += 1
            log.warning("recovered task %s attempt %s from a lost worker", task_id, attempt)
        except (Conflict, NotFound):
            continue
    return recovered
