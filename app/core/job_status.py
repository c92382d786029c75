"""A job's status and progress, read from its tasks' counts (a job has no state of its own
beyond being cancelled)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from app.core.states import FINAL_STATUSES, TaskStatus

#: Items one job may hold.
MAX_JOB_ITEMS = 10_000


class JobStatus(StrEnum):
    RUNNING = "RUNNING"  # some task is not final yet
    COMPLETED = "COMPLETED"  # every task COMPLETED
    FAILED = "FAILED"  # every task final, some not COMPLETED
    CANCELLED = "CANCELLED"  # cancelled by its owner or an admin


def finished(counts: Mapping[str, int]) -> int:
    return sum(n for status, n in counts.items() if status in FINAL_STATUSES)


def job_status(counts: Mapping[str, int], total: int, cancelled: bool) -> JobStatus:
    if cancelled:
        return JobStatus.CANCELLED
    if finished(counts) < total:
        return JobStatus.RUNNING
    if counts.get(TaskStatus.COMPLETED.value, 0) == total:
        return JobStatus.COMPLETED
    return JobStatus.FAILED


def progress(counts: Mapping[str, int], total: int) -> int:
    """Finished tasks as a whole percentage of ``total`` (100 only when all are)."""
    if total <= 0:
        return 100
    done = finished(counts)
    return 100 if done >= total else done * 100 // total
