"""Health checks, breaker wake-ups and stale-server cleanup (driven by beat)."""

from __future__ import annotations

import logging

from app.core.balancing import seed_weight
from app.core.errors import NotFound
from app.core.server_health import Health, ServerStatus, after_check, is_expired, is_silent
from app.services import servers, waiting
from app.services.context import Context

log = logging.getLogger("taskfleet.health")

#: Servers handled per run of a periodic job.
BATCH = 200


def _health_of(state: dict[str, str], status: str) -> Health:
    defaults = Health()
    return Health(
        status=ServerStatus(status),
        score=int(state.get("health_score", defaults.score)),
        interval_s=float(state.get("interval_s", defaults.interval_s)),
        successes_in_row=int(state.get("ok_in_row", 0)),
        failures_in_row=int(state.get("bad_in_row", 0)),
    )


def check(ctx: Context, server_id: str) -> Health | None:
    """Call the server's health endpoint once, move its health state machine, update
    its weight from its metrics, and schedule the next check. None if it is gone."""
    try:
        row = servers.get(ctx, server_id)
    except NotFound:  # removed meanwhile
        return None
    state = ctx.fleet.state(server_id)
    before = _health_of(state, row.status)
    # Scheduled first: a check that crashes (or a lost job) must not end all checks.
    ctx.fleet.schedule_health(server_id, ctx.now_ms() + int(before.interval_s * 1000))
    ok = ctx.backends.health(row.endpoints["health"])
    after = after_check(before, ok)
    now = ctx.now_ms()
    fields: dict[str, object] = {
        "health_score": after.score,
        "interval_s": round(after.interval_s, 3),
        "ok_in_row": after.successes_in_row,
        "bad_in_row": after.failures_in_row,
        "last_check_ms": now,
    }
    if row.weight is None:
        fields["weight"] = weight_from_metrics(state)
    if ok:
        ctx.fleet.touch(server_id, now)
    ctx.fleet.update(server_id, now, **fields)
    if after.status is not before.status:
        servers.set_status(ctx, server_id, after.status, reason="health")
        if after.status is ServerStatus.OFFLINE:
            servers.evacuate(ctx, server_id, "went offline")
        elif after.status is ServerStatus.ONLINE:
            waiting.wake(ctx, row.max_concurrent, server_id)
    ctx.fleet.schedule_health(server_id, now + int(after.interval_s * 1000))
    return after


def weight_from_metrics(state: dict[str, str]) -> int:
    processed = int(state.get("processed", 0))
    if processed == 0:
        return 1
    success_rate = int(state.get("successes", 0)) / processed
    return seed_weight(success_rate, int(state.get("resp_total_ms", 0)) / processed)


def due_checks(ctx: Context) -> list[str]:
    """Claim the servers whose check is due (the beat job fans them out)."""
    return ctx.fleet.due_health_checks(ctx.now_ms(), BATCH)


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
    for server_id in ctx.fleet.server_ids():
        state = ctx.fleet.state(server_id)
        status = state.get("status")
        if status in (ServerStatus.ONLINE, ServerStatus.DEGRADED) and is_silent(
            int(state.get("last_seen_ms", now)), now
        ):
            servers.set_status(ctx, server_id, ServerStatus.OFFLINE, reason="silent")
            servers.evacuate(ctx, server_id, "went silent")
            offline += 1
        elif status == ServerStatus.OFFLINE and is_expired(
            int(state.get("offline_since_ms", now)), now, ctx.settings.server_removal_grace_s
        ):
            removed += servers.remove(ctx, server_id, "offline past the grace period")
    return {"offline": offline, "removed": removed}
