"""Statistics as plain data: counters bucketed by (hour, scope, key), and the figures
the API reports from them. No I/O here.

Counters are kept per hour (``hour`` = epoch hours), in three scopes:

- ``a`` (all tasks, key ``""``) and ``t`` (key: the task type): ``created``,
  ``completed``, ``failed``, ``timeout``, ``cancelled`` (transitions into that state),
  ``retried`` (an attempt that failed or timed out and was tried again, or a manual
  retry) and ``duration_ms`` (the processing time of completed tasks, summed);
- ``s`` (key: the server id): ``attempts_ok``, ``attempts_failed`` (attempts that ended
  COMPLETED, or FAILED/TIMEOUT), ``attempt_ms`` (their time, summed) and
  ``last_active_ms`` (the latest end, a maximum rather than a sum).

Every counter is bucketed by the time of its event, which is also the time the
database records for it, so the same figures can be recounted from the records.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

HOUR_MS = 3_600_000

TASK_METRICS = ("created", "completed", "failed", "timeout", "cancelled", "retried", "duration_ms")
SERVER_METRICS = ("attempts_ok", "attempts_failed", "attempt_ms", "last_active_ms")
METRICS = TASK_METRICS + SERVER_METRICS
#: Metrics combined by taking the larger value instead of adding.
MAX_METRICS = frozenset({"last_active_ms"})

ALL, BY_TYPE, BY_SERVER = "a", "t", "s"

Bucket = tuple[int, str, str]  # (hour, scope, key)


def hour_of(ms: int) -> int:
    return ms // HOUR_MS


def parse_field(name: str) -> tuple[Bucket, str] | None:
    """``'<hour>|<scope>|<key>|<metric>'`` (a key may itself hold '|'); None for other fields."""
    parts = name.split("|", 2)
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    key, _, metric = parts[2].rpartition("|")
    if metric not in METRICS:
        return None
    return (int(parts[0]), parts[1], key), metric


@dataclass
class Tally:
    """Counters by bucket; adding two tallies adds counters (and keeps maxima)."""

    buckets: dict[Bucket, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))

    def add(self, bucket: Bucket, metric: str, value: int) -> None:
        counters = self.buckets[bucket]
        if metric in MAX_METRICS:
            counters[metric] = max(counters.get(metric, 0), value)
        else:
            counters[metric] = counters.get(metric, 0) + value

    def add_all(self, bucket: Bucket, counters: Mapping[str, int | None]) -> None:
        for metric, value in counters.items():
            if value:
                self.add(bucket, metric, int(value))

    def merge(self, other: Tally) -> Tally:
        for bucket, counters in other.buckets.items():
            self.add_all(bucket, counters)
        return self

    def without_hours(self, hours: Iterable[int]) -> Tally:
        skip = set(hours)
        kept = Tally()
        for bucket, counters in self.buckets.items():
            if bucket[0] not in skip:
                kept.add_all(bucket, counters)
        return kept

    def within(self, first_hour: int | None, end_hour: int | None) -> Tally:
        """Only the buckets with first_hour <= hour < end_hour (None: unbounded)."""
        kept = Tally()
        for bucket, counters in self.buckets.items():
            if (first_hour is None or bucket[0] >= first_hour) and (end_hour is None or bucket[0] < end_hour):
                kept.add_all(bucket, counters)
        return kept

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Tally:
        """A tally from the live counters hash (other fields are ignored)."""
        tally = cls()
        for name, value in fields.items():
            parsed = parse_field(name)
            if parsed is not None:
                tally.add(parsed[0], parsed[1], int(value))
        return tally

    def sum(self, scope: str, key: str | None = None, hour: int | None = None) -> dict[str, int]:
        """Counters of ``scope`` (one ``key``, or all keys) added over the hours (or one)."""
        return combine(
            *(
                counters
                for (b_hour, b_scope, b_key), counters in self.buckets.items()
                if b_scope == scope and (key is None or b_key == key) and (hour is None or b_hour == hour)
            )
        )

    def by_key(self) -> dict[tuple[str, str], dict[str, int]]:
        """Counters per (scope, key), added over the hours."""
        out: dict[tuple[str, str], dict[str, int]] = {}
        for (_, scope, key), counters in self.buckets.items():
            out[(scope, key)] = combine(out.get((scope, key), {}), counters)
        return out

    def keys(self, scope: str) -> set[str]:
        return {bucket[2] for bucket in self.buckets if bucket[1] == scope}


def combine(*parts: Mapping[str, int]) -> dict[str, int]:
    """Counters added metric by metric (maxima kept for ``MAX_METRICS``)."""
    total: dict[str, int] = {}
    for counters in parts:
        for metric, value in counters.items():
            if metric in MAX_METRICS:
                total[metric] = max(total.get(metric, 0), value)
            else:
                total[metric] = total.get(metric, 0) + value
    return total


def subtract(total: Mapping[str, int], part: Mapping[str, int]) -> dict[str, int]:
    """``total`` without ``part`` (maxima are kept: they cannot be taken apart)."""
    out = dict(total)
    for metric, value in part.items():
        if metric not in MAX_METRICS:
            out[metric] = out.get(metric, 0) - value
    return out


def _average(total: int, count: int) -> float | None:
    return round(total / count, 1) if count else None


def server_figures(counters: Mapping[str, int]) -> dict[str, Any]:
    """One server's figures from its ``s`` counters."""
    ok, failed = counters.get("attempts_ok", 0), counters.get("attempts_failed", 0)
    processed = ok + failed
    return {
        "tasks_processed": processed,
        "success_count": ok,
        "failure_count": failed,
        "success_rate": round(ok / processed, 4) if processed else None,
        "average_response_time": _average(counters.get("attempt_ms", 0), processed),
        "last_active_ms": counters.get("last_active_ms") or None,
    }


def hour_figures(hour: int, counters: Mapping[str, int]) -> dict[str, Any]:
    """One row of the hourly report from an hour's ``a`` counters."""
    completed = counters.get("completed", 0)
    return {
        "hour_ms": hour * HOUR_MS,
        "tasks": counters.get("created", 0),
        "successful": completed,
        "failed": counters.get("failed", 0) + counters.get("timeout", 0),
        "avg_duration": _average(counters.get("duration_ms", 0), completed),
    }


def task_figures(counters: Mapping[str, int]) -> dict[str, Any]:
    """The task totals of ``/api/stats`` from ``a`` counters."""
    completed = counters.get("completed", 0)
    return {
        "total_tasks": counters.get("created", 0),
        "successful_tasks": completed,
        "failed_tasks": counters.get("failed", 0) + counters.get("timeout", 0),
        "timed_out_tasks": counters.get("timeout", 0),
        "cancelled_tasks": counters.get("cancelled", 0),
        "retried_tasks": counters.get("retried", 0),
        "average_processing_time": _average(counters.get("duration_ms", 0), completed),
    }
