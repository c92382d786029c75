"""Load-balancing rules. The choice itself runs in Lua (``app/store/lua/lb_*.lua``) so
that selecting and reserving a slot is one atomic step; the numbers live here."""

from __future__ import annotations

from enum import StrEnum


class Algorithm(StrEnum):
    ROUND_ROBIN = "round-robin"
    WEIGHTED_ROUND_ROBIN = "weighted-round-robin"  # smooth, by stride scheduling
    LEAST_CONNECTIONS = "least-connections"
    RESPONSE_TIME = "response-time"  # lowest latency EWMA
    RANDOM = "random"  # weighted by the servers' weights
    P2C_EWMA = "p2c-ewma"  # power of two choices on EWMA x (in-flight + 1)
    RESOURCE_AWARE = "resource-aware"  # reported cpu/memory (or GPU) and slots in use


class Verdict(StrEnum):
    """What a released slot records in its server's metrics and circuit breaker."""

    SUCCESS = "success"  # the attempt completed: a response time, the breaker closes
    FAILURE = "failure"  # the server failed it: a response time, a failure in a row
    BUSY = "busy"  # the server said 429/503: left alone for a while, no failure
    NONE = "none"  # not the server's doing (cancelled, the server went away): nothing


#: The seeds' default; lib/pool.lua falls back to the same when none was chosen.
DEFAULT_ALGORITHM = Algorithm.WEIGHTED_ROUND_ROBIN
#: Weight of a new response-time sample in the EWMA (0..1).
EWMA_ALPHA = 0.3
#: Milliseconds assumed for a server with no history, so p2c-ewma and response-time do
#: not flood a newcomer (Finagle's peak-EWMA penalty idea).
NO_HISTORY_PENALTY_MS = 1000.0
#: Entries of a pool's avail set read per selection (random ones for random and p2c-ewma);
#: the front entry is usually the pick, the rest cover larger slot costs and an avoided server.
SCAN_PER_POOL = 4
#: Dispatch failures in a row that open a server's circuit (the seeds' 5).
CIRCUIT_FAILURES = 5
#: Seconds an open circuit stays open before one probe is allowed.
CIRCUIT_OPEN_S = 60
#: Seconds to leave a server alone after it said busy without a Retry-After.
BUSY_DEFAULT_S = 1.0


#: Seconds a server's reported figures count for, in routing and alerts; older ones are
#: unknown (lua/lib/pool.lua's FRESH_MS agrees).
REPORT_FRESH_S = 60
#: What an unknown cpu or memory figure (stale or not reported) counts as in
#: resource-aware: the middle, so such a server is neither sought nor shunned and ranks
#: by the slots it has in use (lua/lib/pool.lua's UNKNOWN_LOAD agrees).
UNKNOWN_LOAD = 0.5


def is_fresh(reported_at_ms: int | None, now_ms: int) -> bool:
    """Whether figures reported at ``reported_at_ms`` still count at ``now_ms``."""
    return reported_at_ms is not None and now_ms - reported_at_ms <= REPORT_FRESH_S * 1000


def resource_score(cpu: float | None, memory: float | None, in_use: int, degraded: bool = False) -> float:
    """resource-aware's score, higher is better: 0.4 x (1 - cpu) + 0.4 x (1 - memory) +
    0.2 / (1 + slots in use), halved for a degraded server. ``cpu`` and ``memory`` are
    fractions (GPU utilization and memory in their place when the server reports them),
    None when unknown. The choice itself runs in lua/lib/pool.lua; a test holds the two
    to the same numbers."""
    cpu = UNKNOWN_LOAD if cpu is None else cpu
    memory = UNKNOWN_LOAD if memory is None else memory
    score = 0.4 * (1 - cpu) + 0.4 * (1 - memory) + 0.2 / (1 + in_use)
    return score / 2 if degraded else score


def seed_weight(success_rate: float | None, avg_response_ms: float | None) -> int:
    """The seeds' weight: the mean of success rate x 10 and (10 - seconds of average
    response time), rounded; 1 for a server with no history. Never below 1."""
    if success_rate is None:
        return 1
    success_part = success_rate * 10
    response_part = max(0.0, 10 - (avg_response_ms if avg_response_ms is not None else 10_000) / 1000)
    return max(1, round((success_part + response_part) / 2))
