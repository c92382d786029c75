"""Limits per client (a token's ``sub``): how fast it may submit, how many of its tasks
may be unfinished at once, and its fair-share weight.

A client's limits are the deployment's defaults (``CLIENT_SUBMITS_PER_S``,
``CLIENT_BURST``, ``CLIENT_MAX_UNFINISHED``, weight 1) where an admin set nothing
(``StoredLimits`` fields left None). Submitting N tasks costs N tokens of a bucket that
holds ``burst`` tokens and refills at ``submits_per_s``; it also needs room for N more
unfinished tasks under ``max_unfinished``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from app.core.states import FINAL_STATUSES, TaskStatus

#: Every status a task is unfinished in (counted against ``max_unfinished``).
UNFINISHED_STATUSES = tuple(status for status in TaskStatus if status not in FINAL_STATUSES)
#: A client's fair-share weight where none is set.
DEFAULT_WEIGHT = 1
#: Sanity bounds of the values an admin may set.
WEIGHT_MAX = 1000
SUBMITS_PER_S_MAX = 1_000_000.0
#: The slowest rate: one task per 1000 s.
SUBMITS_PER_S_MIN = 0.001
BURST_MAX = 10_000_000
MAX_UNFINISHED_MAX = 100_000_000
#: Seconds a client refused for its unfinished tasks is told to wait: when tasks finish
#: is not known, and a recount runs at most about this often per client.
UNFINISHED_RETRY_AFTER_S = 5


@dataclass(frozen=True)
class ClientLimits:
    """The limits in force for one client."""

    submits_per_s: float
    burst: int
    max_unfinished: int
    weight: int = DEFAULT_WEIGHT


@dataclass(frozen=True)
class StoredLimits:
    """What an admin set for one client; None: the default."""

    submits_per_s: float | None = None
    burst: int | None = None
    max_unfinished: int | None = None
    weight: int | None = None

    def effective(self, defaults: ClientLimits) -> ClientLimits:
        """The limits in force: each set value, else its default."""
        changes = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        return replace(defaults, **changes)

    def updated(self, changes: dict[str, float | int | None]) -> StoredLimits:
        """These limits with ``changes`` applied (a None value goes back to the default)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


def never_fits(limits: ClientLimits, count: int) -> str | None:
    """Why a submission of ``count`` tasks can never be accepted under ``limits`` (it
    costs more than a full bucket, or more than the unfinished cap), or None."""
    if count > limits.burst:
        return (
            f"{count} tasks in one request can never pass this client's burst of {limits.burst} "
            "submissions: split it, or ask an admin to raise the client's burst"
        )
    if count > limits.max_unfinished:
        return (
            f"{count} tasks can never be unfinished at once under this client's cap of "
            f"{limits.max_unfinished}: split it, or ask an admin to raise maxUnfinished"
        )
    return None


def retry_after_s(wait_ms: int) -> int:
    """Whole seconds to tell a refused client (rounded up, at least 1)."""
    return max(1, math.ceil(wait_ms / 1000))
