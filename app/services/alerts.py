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

#: Waiting-line entries looked at to tell live waiting tasks from stale entries.
PEEK = 20


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
    """Profiles with a task still PENDING in their line and no healthy server."""
    unserved = []
    for pid, (capabilities, group) in ctx.waiting.profiles().items():
        ids = ctx.waiting.peek(pid, PEEK)
        if not ids or ctx.fleet.has_healthy(capabilities, group):
            continue
        if any(
            (state := ctx.tasks.get(task_id)) is not None and state.status is TaskStatus.PENDING
            for task_id in ids
        ):
            unserved.append(",".join(capabilities) + "|" + (group or ""))
    return tuple(sorted(unserved))


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
