"""The alert check (a beat job): observe, compare with the alerts firing, announce
what started and what resolved — to the log and the optional webhook, once each."""

from __future__ import annotations

import logging
from typing import Any

from app.core.alerts import RESOURCES, AlertRules, Observation, firing
from app.core.balancing import is_fresh
from app.core.clock import iso
from app.core.states import RETRYABLE_FINAL_STATUSES, TaskStatus
from app.services.context import Context
from app.store import tasks_repo

log = logging.getLogger("taskfleet.alerts")

#: Unserved profiles announced at most, each its own alert (one client can make up
#: thousands of capabilities; the cap on waiting profiles bounds them, not the alerts).
MAX_UNSERVED = 20


def rules(ctx: Context) -> AlertRules:
    s = ctx.settings
    return AlertRules(
        failure_rate=s.alert_failure_percent / 100,
        failure_min=s.alert_failure_min,
        backlog=s.alert_backlog,
        cpu=s.alert_cpu,
        memory=s.alert_memory,
        disk=s.alert_disk,
        network=s.alert_network,
    )


def _unserved(ctx: Context) -> tuple[str, ...]:
    """Profiles with a task in their line and no healthy server (at most
    ``MAX_UNSERVED``, first by name): the profiles in one read and the pools in one,
    then matched here, so a check costs no Redis call per profile."""
    profiles = ctx.waiting.profiles()
    if not profiles:
        return ()
    healthy = ctx.fleet.healthy_pool_metas()
    unserved = sorted(
        ",".join(capabilities) + "|" + (group or "")
        for capabilities, group in profiles.values()
        if not any(meta.serves(capabilities, group) for meta in healthy)
    )
    return tuple(unserved[:MAX_UNSERVED])


def _reported(ctx: Context) -> dict[str, dict[str, float]]:
    """The resource figures each server reported within the last minute."""
    now = ctx.now_ms()
    found = {}
    for live in ctx.fleet.states(ctx.fleet.server_ids()):
        if live.known and is_fresh(live.reported_at_ms, now):
            reported = live.reported()
            figures = {name: value for name in RESOURCES if (value := reported[name]) is not None}
            if figures:
                found[live.id] = figures
    return found


def observe(ctx: Context) -> Observation:
    window_s = ctx.settings.alert_window_s
    with ctx.db.session() as session:
        finished = tasks_repo.finished_by_status_since(session, ctx.now_ms() - window_s * 1000)
        pending = sum(tasks_repo.count_by_status(session, [TaskStatus.PENDING]).values())
    return Observation(
        window_s=window_s,
        finished=sum(n for status, n in finished.items() if status != TaskStatus.CANCELLED),
        failed=sum(finished.get(status, 0) for status in RETRYABLE_FINAL_STATUSES),
        pending=pending,
        unserved=_unserved(ctx),
        reported=_reported(ctx),
    )


def firing_now(ctx: Context) -> list[dict[str, Any]]:
    """The alerts firing now (as the last check left them), oldest first."""
    alerts = [
        {"alert": key, "message": record.get("message"), "since_ms": int(record.get("since_ms", 0))}
        for key, record in ctx.alerts.all().items()
    ]
    return sorted(alerts, key=lambda alert: (alert["since_ms"], alert["alert"]))


def _announce(ctx: Context, status: str, key: str, message: Any, since_ms: Any) -> None:
    now = ctx.now_ms()
    (log.warning if status == "firing" else log.info)("alert %s %s: %s", key, status, message)
    url = ctx.settings.alert_webhook_url
    if url:
        body = {
            "status": status,
            "alert": key,
            "message": message,
            "since": iso(int(since_ms)),
            "at": iso(now),
        }
        if not ctx.backends.notify(url, body):
            log.warning("alert webhook did not accept %s %s", key, status)


def check(ctx: Context) -> dict[str, int]:
    """Announce alerts that started and ones that resolved since the last check."""
    now = ctx.now_ms()
    current = firing(rules(ctx), observe(ctx))
    started = resolved = 0
    for key, message in current.items():
        if ctx.alerts.start(key, message, now):
            _announce(ctx, "firing", key, message, now)
            started += 1
    for key in set(ctx.alerts.all()) - set(current):
        record = ctx.alerts.end(key)
        if record is not None:
            _announce(ctx, "resolved", key, record.get("message"), record.get("since_ms", now))
            resolved += 1
    return {"started": started, "resolved": resolved, "firing": len(current)}
