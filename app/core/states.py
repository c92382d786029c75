"""The task state machine: states, modes and the transitions allowed between them."""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    WAITING = "WAITING"  # waits for its dependsOn tasks
    SCHEDULED = "SCHEDULED"  # waits for its runAt time
    PENDING = "PENDING"  # ready; waits for a dispatch worker and a free slot
    PROCESSING = "PROCESSING"  # an attempt is running on a server
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    CANCELLED = "CANCELLED"


class TaskMode(StrEnum):
    SYNC = "sync"  # the predict response body is the result
    CALLBACK = "callback"  # the backend acknowledges, then PUTs the result to callback_url
    POLL = "poll"  # the backend answers with a job to poll: taskfleet GETs its status


class AttemptOutcome(StrEnum):
    """How one attempt on a server ended (the attempt record's ``outcome``)."""

    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    BUSY = "BUSY"  # the server said 429/503: the task waits again, the attempt is not spent
    CANCELLED = "CANCELLED"


#: Outcomes that count as an attempt the server ran to an end (for its statistics).
COUNTED_OUTCOMES = frozenset({AttemptOutcome.COMPLETED, AttemptOutcome.FAILED, AttemptOutcome.TIMEOUT})
#: Outcomes that count as a failed attempt.
FAILED_OUTCOMES = frozenset({AttemptOutcome.FAILED, AttemptOutcome.TIMEOUT})


FINAL_STATUSES = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.TIMEOUT, TaskStatus.CANCELLED}
)
RETRYABLE_FINAL_STATUSES = frozenset({TaskStatus.FAILED, TaskStatus.TIMEOUT})

#: Every allowed (from, to). PROCESSING -> PENDING is an automatic retry after a failed
#: attempt (the attempt record keeps its outcome); FAILED/TIMEOUT -> PENDING is a manual
#: retry with a fresh budget. PROCESSING -> PROCESSING is a progress update.
ALLOWED_TRANSITIONS: frozenset[tuple[TaskStatus, TaskStatus]] = frozenset(
    {
        (TaskStatus.WAITING, TaskStatus.PENDING),
        (TaskStatus.WAITING, TaskStatus.SCHEDULED),  # dependencies met, start time not yet
        (TaskStatus.WAITING, TaskStatus.FAILED),  # a dependency ended without completing
        (TaskStatus.SCHEDULED, TaskStatus.PENDING),
        (TaskStatus.PENDING, TaskStatus.PROCESSING),
        (TaskStatus.PENDING, TaskStatus.TIMEOUT),  # no server could take it in time
        (TaskStatus.PROCESSING, TaskStatus.PROCESSING),
        (TaskStatus.PROCESSING, TaskStatus.COMPLETED),
        (TaskStatus.PROCESSING, TaskStatus.FAILED),
        (TaskStatus.PROCESSING, TaskStatus.TIMEOUT),
        (TaskStatus.PROCESSING, TaskStatus.PENDING),
        (TaskStatus.FAILED, TaskStatus.PENDING),
        (TaskStatus.TIMEOUT, TaskStatus.PENDING),
    }
    | {(s, TaskStatus.CANCELLED) for s in TaskStatus if s not in FINAL_STATUSES}
)


def is_final(status: str) -> bool:
    return status in FINAL_STATUSES


def sources_of(target: TaskStatus) -> frozenset[TaskStatus]:
    """The states from which ``target`` may be entered."""
    return frozenset(src for src, dst in ALLOWED_TRANSITIONS if dst == target)


def is_allowed(source: str, target: str) -> bool:
    return (TaskStatus(source), TaskStatus(target)) in ALLOWED_TRANSITIONS


def attempts_left(attempts: int, retry_base: int, max_retries: int) -> bool:
    """Whether another attempt fits the budget: 1 + max_retries attempts since the last
    manual retry (``retry_base`` is the attempt count when that budget started)."""
    return attempts - retry_base < max_retries + 1
