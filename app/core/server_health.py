"""The health state machine of a server, as a pure function of the check's outcome."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class ServerStatus(StrEnum):
    ONLINE = "online"
    DEGRADED = "degraded"  # selected at reduced weight
    OFFLINE = "offline"  # not selected; its running tasks go elsewhere
    DRAINING = "draining"  # being unregistered: no new tasks


#: Seconds; the seeds' health-check timeout.
CHECK_TIMEOUT_S = 5.0
#: Seconds between checks: start, bounds, and the factors applied after each outcome.
INTERVAL_START_S = 10.0
INTERVAL_MIN_S = 5.0
INTERVAL_MAX_S = 60.0
GROW_AFTER_SUCCESS = 1.2
SHRINK_AFTER_FAILURE = 1.5
#: Health score bounds and steps (the seeds' +5 / -10 in 0..100).
SCORE_MAX, SCORE_UP, SCORE_DOWN = 100, 5, 10
#: Consecutive outcomes that change the status.
FAILURES_TO_OFFLINE = 3
SUCCESSES_TO_ONLINE = 3
#: Seconds without a heartbeat or successful check before a server counts as offline.
SILENT_OFFLINE_S = 300


@dataclass(frozen=True)
class Health:
    status: ServerStatus = ServerStatus.ONLINE
    score: int = SCORE_MAX
    interval_s: float = INTERVAL_START_S
    successes_in_row: int = 0
    failures_in_row: int = 0


def after_check(health: Health, ok: bool) -> Health:
    """The server's health after one check: score, interval and status per the seeds.
    A draining server stays draining whatever the check says."""
    if ok:
        successes = health.successes_in_row + 1
        status = health.status
        if status in (ServerStatus.DEGRADED, ServerStatus.OFFLINE) and successes >= SUCCESSES_TO_ONLINE:
            status = ServerStatus.ONLINE
        return replace(
            health,
            status=status,
            score=min(SCORE_MAX, health.score + SCORE_UP),
            interval_s=min(INTERVAL_MAX_S, health.interval_s * GROW_AFTER_SUCCESS),
            successes_in_row=successes,
            failures_in_row=0,
        )
    failures = health.failures_in_row + 1
    status = ServerStatus.OFFLINE if failures >= FAILURES_TO_OFFLINE else ServerStatus.DEGRADED
    if health.status is ServerStatus.DRAINING:
        status = ServerStatus.DRAINING
    return replace(
        health,
        status=status,
        score=max(0, health.score - SCORE_DOWN),
        interval_s=max(INTERVAL_MIN_S, health.interval_s / SHRINK_AFTER_FAILURE),
        successes_in_row=0,
        failures_in_row=failures,
    )


def is_silent(last_seen_ms: int, now_ms: int) -> bool:
    """No heartbeat or successful check for ``SILENT_OFFLINE_S``."""
    return now_ms - last_seen_ms >= SILENT_OFFLINE_S * 1000


def is_expired(offline_since_ms: int, now_ms: int, grace_s: int) -> bool:
    """Offline for longer than the removal grace period."""
    return now_ms - offline_since_ms >= grace_s * 1000
