"""What the fleet is doing now (``/api/status``) and whether this API can serve
(``/api/ready``)."""

from __future__ import annotations

import logging
from typing import Any

from app.config import QUEUES
from app.core.errors import StoreUnavailable
from app.core.states import TaskStatus
from app.services.context import Context
from app.store import tasks_repo
from app.store.redis_client import describe_failure

log = logging.getLogger("taskfleet.status")

#: A worker that has not said it is alive for this long is not counted.
WORKER_SEEN_S = 30
RATE_WINDOW_S = 60


def _redis_check(ctx: Context) -> str:
    """ "ok", or what is wrong with Redis in words (never its password)."""
    try:
        ctx.redis.ping()
    except Exception as exc:  # any failure means "not ok"
        log.warning("redis check failed: %s", type(exc).__name__)
        return describe_failure(exc, ctx.settings.redis_url)
    return "ok"


def _database_check(ctx: Context) -> str:
    """ "ok", or what is wrong with the database in words: unreachable, or behind this
    code's migrations. A database at a newer migration than this code knows (a deploy
    in progress, release step first) is ok."""
    try:
        at, head, behind = ctx.db.migration_state()
    except StoreUnavailable as exc:
        log.warning("database check failed: %s", type(exc.__cause__ or exc).__name__)
        return "the database is unreachable"
    except Exception as exc:  # an error's text may quote a statement: not shown
        log.warning("database check failed: %s", type(exc).__name__)
        return "the database answered with an error"
    if behind:
        return (
            f"migrations are not at head (the database is at {at or 'none'}, "
            f"this code needs {head}): run taskfleet migrate"
        )
    return "ok"


def workers_seen(ctx: Context) -> list[str]:
    return ctx.workers.seen_since(ctx.now_ms() - WORKER_SEEN_S * 1000)


def ready(ctx: Context) -> tuple[bool, dict[str, str]]:
    """Redis and the database answer, and at least one worker is alive."""
    checks = {"redis": _redis_check(ctx), "database": _database_check(ctx)}
    redis_ok = checks["redis"] == "ok"
    seen = len(workers_seen(ctx)) if redis_ok else 0
    checks["workers"] = f"{seen} alive" if redis_ok else "unknown (redis unavailable)"
    return redis_ok and checks["database"] == "ok" and seen > 0, checks


def limit_figures(ctx: Context) -> list[dict[str, Any]]:
    """Each concurrency limit as Redis counts it now: type, current, inFlight, waiting."""
    live = ctx.limits.live(ctx.limits.types())
    return [
        {"type": t, "current": f.current, "inFlight": f.in_flight, "waiting": f.waiting}
        for t, f in sorted(live.items())
    ]


def status(ctx: Context) -> dict[str, Any]:
    """Queue depths, load by task type, slots, workers and the last minute's rate.
    A part whose store is down is reported as such; the rest is still answered."""
    now = ctx.now_ms()
    view: dict[str, Any] = {
        "redis": _redis_check(ctx),
        "database": _database_check(ctx),
        "workers": [],
        "queues": {},
        "waiting_for_slot": 0,
        "scheduled_retries": 0,
        "by_type": [],
        "slots_in_use": 0,
        "slot_capacity": 0,
        "finished_last_minute": 0,
        "processing_rate": 0.0,
        "limits": [],
    }
    if view["redis"] == "ok":
        try:
            slots = ctx.fleet.slots().values()
            view.update(
                workers=workers_seen(ctx),
                queues=ctx.workers.queue_depths(QUEUES),
                waiting_for_slot=ctx.waiting.total(),
                scheduled_retries=ctx.tasks.scheduled_count(),
                slots_in_use=sum(s.used for s in slots),
                slot_capacity=sum(s.max for s in slots if s.ok),
                limits=limit_figures(ctx),
            )
        except StoreUnavailable:
            view["redis"] = "unavailable"
    if view["database"] == "ok":
        try:
            with ctx.db.session() as session:
                counts = tasks_repo.count_by_status(
                    session,
                    [TaskStatus.SCHEDULED, TaskStatus.WAITING, TaskStatus.PENDING, TaskStatus.PROCESSING],
                )
                done = sum(tasks_repo.finished_by_status_since(session, now - RATE_WINDOW_S * 1000).values())
            types = sorted({task_type for task_type, _ in counts})
            view["by_type"] = [
                {
                    "type": t,
                    "scheduled": counts.get((t, TaskStatus.SCHEDULED), 0),
                    "waiting": counts.get((t, TaskStatus.WAITING), 0),
                    "pending": counts.get((t, TaskStatus.PENDING), 0),
                    "running": counts.get((t, TaskStatus.PROCESSING), 0),
                }
                for t in types
            ]
            view["finished_last_minute"] = done
            view["processing_rate"] = round(done / RATE_WINDOW_S, 2)
        except StoreUnavailable:
            view["database"] = "unavailable"
    return view
