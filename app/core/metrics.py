"""Shapes of the Prometheus metrics that are computed, not kept in process memory."""

from __future__ import annotations

from collections.abc import Mapping

#: Upper bounds (ms) of the dispatch-latency histogram buckets; task_transition.lua
#: counts into the same buckets (a test checks the two lists agree).
LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000)


def cumulative_buckets(raw: Mapping[str, int]) -> list[tuple[str, int]]:
    """Per-bucket counts ('<bound ms>' or 'inf' -> n) as Prometheus wants them:
    (upper bound in seconds, count at or below it), ending with '+Inf'."""
    total, out = 0, []
    for bound in LATENCY_BUCKETS_MS:
        total += raw.get(str(bound), 0)
        out.append((repr(bound / 1000), total))
    out.append(("+Inf", total + raw.get("inf", 0)))
    return out
