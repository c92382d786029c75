"""When a new task may start: its start time (``runAt`` or ``delay``) and its
dependencies (``dependsOn``). Pure rules of time and status; no I/O."""

from __future__ import annotations

from collections.abc import Mapping

from app.core.errors import InvalidInput
from app.core.states import TaskStatus

#: Seconds a task may be delayed at most (30 days, as issue 13 says).
MAX_DELAY_S = 30 * 86_400
#: Dependencies one task may name at most: each costs an edge row and a lookup.
MAX_DEPENDENCIES = 100
#: The error type (in the error log, and leading the task's error text) of a task that
#: failed because a task it depends on ended without completing.
UPSTREAM_FAILED = "upstream_failed"
#: How a dependency may end that makes its dependents fail.
BROKEN_STATUSES = frozenset({TaskStatus.FAILED, TaskStatus.TIMEOUT, TaskStatus.CANCELLED})


def start_ms(run_at_ms: int | None, delay_s: float | None, now_ms: int) -> int | None:
    """The epoch ms before which the task is not dispatched: ``runAt``, or now plus
    ``delay`` seconds (0 to ``MAX_DELAY_S``); None when neither is given."""
    if run_at_ms is not None and delay_s is not None:
        raise InvalidInput("give runAt or delay, not both", {"runAt": ["not with delay"]})
    if delay_s is None:
        return run_at_ms
    if not 0 <= delay_s <= MAX_DELAY_S:
        raise InvalidInput(f"delay must be 0 to {MAX_DELAY_S} seconds", {"delay": delay_s})
    return now_ms + round(delay_s * 1000)


def status_when_ready(run_at_ms: int | None, now_ms: int) -> TaskStatus:
    """The status of a task whose dependencies are met: SCHEDULED while its start time
    is ahead, else PENDING."""
    return TaskStatus.SCHEDULED if run_at_ms is not None and run_at_ms > now_ms else TaskStatus.PENDING


def initial_status(
    run_at_ms: int | None, dependency_statuses: Mapping[str, TaskStatus], now_ms: int
) -> TaskStatus:
    """A new task's status: WAITING while any dependency is not COMPLETED (none may have
    failed: the caller refuses those), else ``status_when_ready``."""
    if any(status is not TaskStatus.COMPLETED for status in dependency_statuses.values()):
        return TaskStatus.WAITING
    return status_when_ready(run_at_ms, now_ms)


def broken_dependency(dependency_statuses: Mapping[str, TaskStatus | None]) -> str | None:
    """The first dependency (by id) that ended without completing, or no longer exists
    (None as its status); None when there is none."""
    for dep_id in sorted(dependency_statuses):
        status = dependency_statuses[dep_id]
        if status is None or status in BROKEN_STATUSES:
            return dep_id
    return None


def all_completed(dependency_statuses: Mapping[str, TaskStatus | None]) -> bool:
    return all(status is TaskStatus.COMPLETED for status in dependency_statuses.values())


def upstream_failed_error(dep_id: str, status: TaskStatus | None) -> str:
    """The error text of a task failed by its dependency ``dep_id``."""
    ended = f"ended {status.value}" if status is not None else "no longer exists"
    return f"{UPSTREAM_FAILED}: dependency {dep_id} {ended}"


def dependency_problems(
    wanted: list[str], found: Mapping[str, tuple[str, TaskStatus]], reader: str | None
) -> dict[str, str]:
    """What is wrong with each dependency a new task names, by id: unknown (or another
    owner's, which ``reader`` may not see: None is an admin, who sees all), or already
    ended without completing. ``found``: id -> (owner, status) of those that exist."""
    problems: dict[str, str] = {}
    for dep_id in wanted:
        row = found.get(dep_id)
        if row is None or (reader is not None and row[0] != reader):
            problems[dep_id] = "no such task"
        elif row[1] in BROKEN_STATUSES:
            problems[dep_id] = f"already {row[1].value}"
    return problems
