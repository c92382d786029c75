"""Statistics: flushing the Redis counters into hourly rollups exactly once, recounting
hours whose counters Redis may have lost, the figures of the stats endpoints, and the
error log.

A figure is the rollups plus what they do not hold yet: the live counters, a batch
a flush is applying, and, for a "dirty" hour (Redis lost data in it, or a counter
could not be written), a recount from the task records instead of both. A dirty hour
is recounted into its rollups for good once it is over.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from app.core.errors import NotFound, StoreUnavailable
from app.core.states import TaskStatus
from app.core.tally import (
    ALL,
    BY_SERVER,
    HOUR_MS,
    Tally,
    combine,
    hour_figures,
    hour_of,
    server_figures,
    subtract,
    task_figures,
)
from app.services.context import Context
from app.store import servers_repo, stats_repo, tasks_repo

log = logging.getLogger("taskfleet.stats")

#: An hour is recounted from the records this long after it ends (late writes land).
RECOUNT_GRACE_MS = 5 * 60 * 1000
#: After Redis lost its data, hours from this long before the last flush are suspect.
LOSS_MARGIN_MS = 60 * 1000
#: Dirty hours recounted per flush, so one run stays short after a long history was
#: marked (e.g. the first rebuild of a database that predates the statistics).
RECOUNT_PER_RUN = 24
#: Rows in the hourly report and trend.
TREND_HOURS = 24
#: Reads retried when a flush lands between the Redis and the database read.
READ_ATTEMPTS = 3

T = TypeVar("T")


# -- writing ------------------------------------------------------------------------


def flush(ctx: Context) -> dict[str, int]:
    """Move the live counters into the rollups (exactly once, even if a flush crashed
    or runs twice at once), then recount dirty hours that are over."""
    now = ctx.now_ms()
    applied = 0
    batch = ctx.stats.cut(str(uuid.uuid4()), now)
    if batch is not None:
        with ctx.db.session() as session:
            applied = int(stats_repo.apply_batch(session, batch.id, batch.cut_ms, batch.tally, now))
        ctx.stats.drop(batch.id)
    return {"applied": applied, "recounted": recount_closed_hours(ctx, now)}


def recount_closed_hours(ctx: Context, now_ms: int) -> int:
    """Replace the rollups of dirty hours that ended ``RECOUNT_GRACE_MS`` ago with a
    recount (oldest first, ``RECOUNT_PER_RUN`` at a time), once the database has caught
    up with every transition."""
    with ctx.db.session() as session:
        dirty = stats_repo.dirty_hours(session)
    closed = [h for h in dirty if (h + 1) * HOUR_MS + RECOUNT_GRACE_MS <= now_ms][:RECOUNT_PER_RUN]
    if not closed or ctx.tasks.unsynced(1):
        return 0
    done = 0
    for hour in closed:
        with ctx.db.session() as session:
            done += stats_repo.replace_hour(session, hour, stats_repo.recount(session, hour))
    if done:
        log.info("recounted statistics of %d hour(s) from the task records", done)
    return done


def mark_lost(ctx: Context) -> int:
    """Redis lost its data: the counters since the last flush are gone, so those hours
    are recounted from the records. Returns the number of hours marked."""
    now = ctx.now_ms()
    with ctx.db.session() as session:
        since = stats_repo.last_cut_ms(session)
        if since is None:
            since = stats_repo.oldest_task_ms(session)
        if since is None:
            return 0
        hours = list(range(hour_of(since - LOSS_MARGIN_MS), hour_of(now) + 1))
        stats_repo.mark_dirty(session, hours, now)
    log.warning("statistics of %d hour(s) will be recounted: Redis lost its counters", len(hours))
    return len(hours)


def mark_missed(ctx: Context, event_ms: int) -> None:
    """A counter for an event at ``event_ms`` could not be written: recount its hour."""
    try:
        with ctx.db.session() as session:
            stats_repo.mark_dirty(session, [hour_of(event_ms)], ctx.now_ms())
    except StoreUnavailable:
        log.warning("could not mark statistics hour for recount; figures may be short")


def record_error(ctx: Context, error_type: str, message: str) -> None:
    """Count a failure in the error log (a failure to count it is logged, not raised)."""
    try:
        with ctx.db.session() as session:
            stats_repo.record_error(session, error_type, message, ctx.now_ms())
    except StoreUnavailable:
        log.warning("error log unavailable; a %s failure was not counted", error_type)


# -- reading ------------------------------------------------------------------------


def _read(ctx: Context, compute: Callable[[Session, Tally, list[int]], T]) -> T:
    """Run ``compute(session, pending, dirty)`` on one consistent view: ``pending`` is
    every counter not in the rollups (live, and a batch not applied yet), outside the
    ``dirty`` hours. Redis is read first; if a flush lands before the database is read,
    the read starts again (else the counters it moved would count twice)."""
    for _ in range(READ_ATTEMPTS):
        started = ctx.now_ms()
        live, batch = ctx.stats.snapshot()
        with ctx.db.session(snapshot=True) as session:
            if stats_repo.flushed_since(session, started):
                continue
            if batch is not None and not stats_repo.batch_applied(session, batch.id):
                live.merge(batch.tally)
            dirty = stats_repo.dirty_hours(session)
            return compute(session, live.without_hours(dirty), dirty)
    raise StoreUnavailable("statistics are being flushed; try again")


def _recount(ctx: Context, session: Session, hour: int, now_ms: int) -> Tally:
    """A dirty hour's counters from the records; cached in the process's Context once
    the hour is over (its records no longer change)."""
    cached = ctx.closed_recounts.get(hour)
    if cached is not None:
        return cached
    tally = stats_repo.recount(session, hour)
    if (hour + 1) * HOUR_MS + RECOUNT_GRACE_MS <= now_ms:
        ctx.closed_recounts[hour] = tally
    return tally


def _with_recounts(
    ctx: Context,
    session: Session,
    pending: Tally,
    dirty: list[int],
    first: int | None,
    end: int | None,
    now_ms: int,
) -> Tally:
    """``pending`` within the hours [first, end), plus the recount of dirty hours there."""
    for hour in set(ctx.closed_recounts) - set(dirty):  # recounted into the rollups since
        ctx.closed_recounts.pop(hour, None)
    extra = pending.within(first, end)
    for hour in dirty:
        if (first is None or hour >= first) and (end is None or hour < end):
            extra.merge(_recount(ctx, session, hour, now_ms))
    return extra


def _per_key(
    ctx: Context,
    session: Session,
    scope: str,
    pending: Tally,
    dirty: list[int],
    first: int | None,
    end: int | None,
    now_ms: int,
    key: str | None = None,
) -> dict[str, dict[str, int]]:
    """Counters of ``scope`` per key over the hours [first, end): stored rollups (the
    all-time totals when the range is unbounded), with dirty hours recounted instead,
    plus what is not flushed yet."""
    if first is None and end is None:
        stored = stats_repo.all_time(session, scope, key)
        for hour in dirty:  # the totals hold these hours' stored rows: take them out
            for (s_, k), counters in stats_repo.hourly_rows(session, hour).by_key().items():
                if s_ == scope and k in stored:
                    stored[k] = subtract(stored[k], counters)
    else:
        stored = stats_repo.totals_by_key(session, scope, first, end, dirty, key=key)
    extra = _with_recounts(ctx, session, pending, dirty, first, end, now_ms)
    for k in extra.keys(scope):
        if key is None or k == key:
            stored[k] = combine(stored.get(k, {}), extra.sum(scope, k))
    return stored


def _hour_range(from_ms: int | None, to_ms: int | None) -> tuple[int | None, int | None]:
    """The hours that overlap [from_ms, to_ms)."""
    return (
        None if from_ms is None else hour_of(from_ms),
        None if to_ms is None else hour_of(to_ms - 1) + 1,
    )


def _trend(
    ctx: Context, session: Session, pending: Tally, dirty: list[int], end_hour: int, now_ms: int
) -> list[dict[str, Any]]:
    first = end_hour - TREND_HOURS
    extra = _with_recounts(ctx, session, pending, dirty, first, end_hour, now_ms)
    rows = stats_repo.hourly(session, first, end_hour, dirty).merge(extra)
    return [hour_figures(hour, rows.sum(ALL, hour=hour)) for hour in range(first, end_hour)]


def summary(ctx: Context, from_ms: int | None = None, to_ms: int | None = None) -> dict[str, Any]:
    """``GET /api/stats``: task totals over the range (all time by default), live
    queue figures, the top five servers and the hourly trend of the range's last day."""
    first, end = _hour_range(from_ms, to_ms)
    trend_end = end if end is not None else hour_of(ctx.now_ms()) + 1

    def compute(session: Session, pending: Tally, dirty: list[int]) -> dict[str, Any]:
        now = ctx.now_ms()
        totals = _per_key(ctx, session, ALL, pending, dirty, first, end, now).get("", {})
        per_server = _per_key(ctx, session, BY_SERVER, pending, dirty, first, end, now)
        top = sorted(
            ({"server_id": sid, **server_figures(counters)} for sid, counters in per_server.items()),
            key=lambda s: (-s["tasks_processed"], s["server_id"]),
        )[:5]
        by_status = tasks_repo.count_by_status(session, [TaskStatus.PENDING, TaskStatus.PROCESSING])
        return {
            **task_figures(totals),
            "pending_tasks": sum(n for (_, status), n in by_status.items() if status == TaskStatus.PENDING),
            "processing_tasks": sum(
                n for (_, status), n in by_status.items() if status == TaskStatus.PROCESSING
            ),
            "server_count": servers_repo.count(session),
            "top_servers": top,
            "hourly_trend": _trend(ctx, session, pending, dirty, trend_end, now),
        }

    return _read(ctx, compute)


def server_stats(ctx: Context, server_id: str) -> dict[str, Any]:
    """``GET /api/stats/servers/{id}``: one server's figures over all time."""

    def compute(session: Session, pending: Tally, dirty: list[int]) -> dict[str, Any]:
        found = _per_key(ctx, session, BY_SERVER, pending, dirty, None, None, ctx.now_ms(), key=server_id)
        if server_id not in found and servers_repo.get(session, server_id) is None:
            raise NotFound(f"server {server_id} not found")
        return {"server_id": server_id, **server_figures(found.get(server_id, {}))}

    return _read(ctx, compute)


def hourly_report(ctx: Context) -> list[dict[str, Any]]:
    """``GET /api/stats/hourly``: the last 24 hours, oldest first, the current one last."""
    end = hour_of(ctx.now_ms()) + 1

    def compute(session: Session, pending: Tally, dirty: list[int]) -> list[dict[str, Any]]:
        return _trend(ctx, session, pending, dirty, end, ctx.now_ms())

    return _read(ctx, compute)


def totals(ctx: Context, scope: str) -> dict[str, dict[str, int]]:
    """All-time counters of every key of ``scope`` (task type or server), for /metrics."""

    def compute(session: Session, pending: Tally, dirty: list[int]) -> dict[str, dict[str, int]]:
        return _per_key(ctx, session, scope, pending, dirty, None, None, ctx.now_ms())

    return _read(ctx, compute)


def error_log(ctx: Context, limit: int, error_type: str | None = None) -> list[dict[str, Any]]:
    """``GET /api/errors``: failures by (type, message), most recently seen first."""
    with ctx.db.session() as session:
        return [
            {
                "error_type": row.error_type,
                "message": row.message,
                "count": row.count,
                "first_seen": row.first_seen,
                "last_seen": row.last_seen,
            }
            for row in stats_repo.errors(session, limit, error_type)
        ]
