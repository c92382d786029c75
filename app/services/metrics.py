"""The figures ``/metrics`` exposes, computed at scrape time from Redis and the
database, so they are right however many API and worker processes there are."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.config import QUEUES
from app.core.states import TaskStatus
from app.core.tally import BY_SERVER, BY_TYPE
from app.services import slot_ledger, statistics
from app.services.context import Context
from app.services.status import limit_figures, workers_seen
from app.store import tasks_repo
from app.store.records import SlotUse


@dataclass
class Snapshot:
    #: (type, status) -> unfinished tasks in that status now (SCHEDULED, WAITING, PENDING,
    #: PROCESSING).
    tasks_now: dict[tuple[str, str], int] = field(default_factory=dict)
    #: type -> all-time counters (created, completed, failed, timeout, cancelled, retried).
    by_type: dict[str, dict[str, int]] = field(default_factory=dict)
    #: server -> all-time counters (attempts_ok, attempts_failed, attempt_ms).
    by_server: dict[str, dict[str, int]] = field(default_factory=dict)
    #: server -> its slots now.
    slots: dict[str, SlotUse] = field(default_factory=dict)
    #: server -> slot units held in Redis minus units the database has running, past
    #: the grace (``slot_ledger.drift``).
    slot_drift: dict[str, int] = field(default_factory=dict)
    queues: dict[str, int] = field(default_factory=dict)
    waiting: int = 0
    scheduled: int = 0
    workers: int = 0
    #: the raw dispatch-latency histogram (see TaskStateStore.dispatch_latency).
    latency: dict[str, int] = field(default_factory=dict)
    #: every concurrency limit: type, current, inFlight, waiting.
    limits: list[dict[str, Any]] = field(default_factory=list)


def snapshot(ctx: Context) -> Snapshot:
    with ctx.db.session() as session:
        tasks_now = tasks_repo.count_by_status(
            session, [TaskStatus.SCHEDULED, TaskStatus.WAITING, TaskStatus.PENDING, TaskStatus.PROCESSING]
        )
    slots = ctx.fleet.slots()
    return Snapshot(
        tasks_now=tasks_now,
        by_type=statistics.totals(ctx, BY_TYPE),
        by_server=statistics.totals(ctx, BY_SERVER),
        slots=slots,
        slot_drift=slot_ledger.drift(ctx, slots),
        queues=ctx.workers.queue_depths(QUEUES),
        waiting=ctx.waiting.total(),
        scheduled=ctx.tasks.scheduled_count(),
        workers=len(workers_seen(ctx)),
        latency=ctx.tasks.dispatch_latency(),
        limits=limit_figures(ctx),
    )
