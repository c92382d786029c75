"""Retry delays: exponential backoff with full jitter."""

from __future__ import annotations

import random

#: Seconds; the seeds' 2^n growth stops here so a flapping fleet is retried within 5 min.
MAX_BACKOFF_S = 300.0


def backoff_s(failed_attempts: int, rng: random.Random | None = None) -> float:
    """Delay before the next attempt after ``failed_attempts`` failures: 2^n s capped at
    ``MAX_BACKOFF_S``, with jitter in [50 %, 100 %] of that so retries do not stampede."""
    base = min(MAX_BACKOFF_S, 2.0 ** max(0, failed_attempts))
    return base * (0.5 + 0.5 * (rng or random).random())
