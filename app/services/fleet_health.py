"""Health checks, breaker wake-ups and stale-server cleanup (driven by beat's tick)."""

from __future__ import annotations

import logging

from app import jobs
from app.backends import SERVER_ID_MISMATCH
from app.core.balancing import seed_weight
from app.core.errors import NotFound
from app.core.server_health import Health, ServerStatus, after_check, is_expired, is_silent
from app.services import servers, waiting
from app.services.context import Context
from app.store.records import ServerRecord

log = logging.getLogger("taskfleet.health")

#: Servers handled per run of a periodic job.
BATCH = 200


def _health_of(live: ServerRecord, status: ServerStatus) -> Health:
    return Health(
        status=status,
        score=live.health_score,
        interval_s=live.interval_s if live.interval_s is not None else Health().interval_s,
        successes_in_row=live.ok_in_row,
        failures_in_row=live.bad_in_row,
    )


def check(ctx: Context, server_id: str) -> Health | None:
    """Call the server's health endpoint once, move its health state machine, update
    its weight from its metrics, and schedule the next check. None if it is gone."""
    try:
        server = servers.get(ctx, server_id)
    except NotFound:  # removed meanwhile
        return None
    live = ctx.fleet.state(server_id)
    before = _health_of(live, server.status)
    # Scheduled first: a check that crashes (or a lost job) must not end all checks.
    ctx.fleet.schedule_health(server_id, ctx.now_ms() + int(before.interval_s * 1000))
    answer = ctx.backends.health(server.endpoints["health"], server.id)
    after = after_check(before, answer.ok)
    now = ctx.now_ms()
    if answer.ok:
        ctx.fleet.touch(server_id, now)
    elif answer.reason == SERVER_ID_MISMATCH:
        log.warning(
            "health check of %s answered by another server", server_id, extra={"server_id": server_id}
        )
    # A configured weight stays; otherwise it follows the metrics.
    weight = {} if server.weight is not None else {"weight": weight_from_metrics(live)}
    ctx.fleet.update(
        server_id,
        now,
        health_score=after.score,
        interval_s=round(after.interval_s, 3),
        ok_in_row=after.successes_in_row,
        bad_in_row=after.failures_in_row,
        last_check_ms=now,
        last_check_error=answer.reason,
        **weight,
    )
    if after.status is not before.status:
        servers.set_status(ctx, server_id, after.status, reason="health")
        if after.status is ServerStatus.OFFLINE:
            servers.evacuate(ctx, server_id, "went offline")
        elif after.status is ServerStatus.ONLINE:
            waiting.wake(ctx, server.max_concurrent, server_id)
    ctx.fleet.schedule_health(server_id, now + int(after.interval_s * 1000))
    return after


def weight_from_metrics(live: ServerRecord) -> int:
    return seed_weight(live.success_rate, live.average_response_ms)


def due_checks(ctx: Context) -> list[str]:
    """Claim the servers whose check is due."""
    return ctx.fleet.due_health_checks(ctx.now_ms(), BATCH)


def start_due_checks(ctx: Context) -> int:
    """A check job for every server whose check is due (the health_checks routine)."""
    due = due_checks(ctx)
    for server_id in due:
        ctx.queue.call_later(jobs.HEALTH_CHECK, [server_id])
    return len(due)


def wake_servers(ctx: Context) -> int:
    """Servers whose open circuit or busy period ended can take tasks again (an open
    circuit turns half-open: one probe); waiting tasks are started for them."""
    woken = 0
    for server_id in ctx.fleet.due_wake_ups(ctx.now_ms(), BATCH):
        if ctx.fleet.sync(server_id, ctx.now_ms()):
            woken += 1
    if woken:
        waiting.wake_for_free_slots(ctx)
    return woken


def cleanup_stale(ctx: Context) -> dict[str, int]:
    """Silent servers go offline (their tasks go elsewhere); servers offline for longer
    than the grace period are removed."""
    now = ctx.now_ms()
    offline = removed = 0
    for live in ctx.fleet.states(ctx.fleet.server_ids()):
        server_id, status = live.id, live.status
        if not live.known:
            continue
        if status in (ServerStatus.ONLINE, ServerStatus.DEGRADED) and is_silent(
            live.last_seen_ms if live.last_seen_ms is not None else now, now
        ):
            servers.set_status(ctx, server_id, ServerStatus.OFFLINE, reason="silent")
            servers.evacuate(ctx, server_id, "went silent")
            offline += 1
        elif status is ServerStatus.OFFLINE and is_expired(
            live.offline_since_ms if live.offline_since_ms is not None else now,
            now,
            ctx.settings.server_removal_grace_s,
        ):
            removed += servers.remove(ctx, server_id, "offline past the grace period")
    return {"offline": offline, "removed": removed}
