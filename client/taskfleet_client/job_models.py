"""Jobs: many tasks submitted together, read as one (``/api/jobs``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taskfleet_client.models import FINAL_STATUSES, ApiObject, Field, integer, maybe_text, text, texts, time

#: The status of a job until every one of its tasks is final (or it is cancelled).
JOB_RUNNING = "RUNNING"


def tally(key: str) -> Field[dict[str, int]]:
    return Field(key, lambda value: {str(name): int(n) for name, n in value.items()}, {})


class Job(ApiObject):
    """Many tasks submitted together (``GET /api/jobs/{id}``)."""

    __slots__ = ()

    id = text("id")
    name = maybe_text("name")
    owner = text("owner")
    #: RUNNING until every task is final, then COMPLETED (all completed) or FAILED (any
    #: not); CANCELLED once cancelled.
    status = text("status")
    #: Tasks in the job.
    total = integer("total")
    #: In item order; not in the jobs of a list (``jobs()``).
    task_ids = texts("taskIds")
    #: Tasks by status, now: ``{"COMPLETED": 8, "PENDING": 2}``.
    counts = tally("counts")
    #: Finished tasks as a percentage of total, 0-100.
    progress = integer("progress")
    created_at = time("createdAt")
    finished_at = time("finishedAt")

    @property
    def done(self) -> bool:
        """The job no longer runs: COMPLETED, FAILED or CANCELLED."""
        return bool(self.status) and self.status != JOB_RUNNING

    @property
    def ok(self) -> bool:
        """Every task of the job COMPLETED."""
        return self.status == "COMPLETED"

    @property
    def finished(self) -> int:
        """Tasks that are final now."""
        return sum(n for status, n in self.counts.items() if status in FINAL_STATUSES)


@dataclass(frozen=True)
class JobPage:
    """One page of ``GET /api/jobs``: the jobs, newest first (without their
    ``task_ids``), and the cursor of the next page (None on the last)."""

    jobs: list[Job]
    next_cursor: str | None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> JobPage:
        return cls([Job(item) for item in body.get("items", [])], body.get("nextCursor"))
