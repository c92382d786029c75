"""Which maintenance routine runs in which window of its interval: however many beats
send ticks and however many workers run them, each routine runs at most once per window.

A window is the ``interval``-long slice of time since the epoch that holds ``now``
(``now // interval``), so it is the same for every caller whose clock agrees, as the
rest of taskfleet assumes. A plain key per routine with a TTL of its interval would
drift: a tick a millisecond early would find the previous run's key alive and skip a
whole interval, so 1 s routines would often run every 2 s.
"""

from __future__ import annotations

import redis

from app.store import keys
from app.store.redis_client import redis_errors


class RoutineClaims:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def claim(self, name: str, every_ms: int, now_ms: int) -> bool:
        """True for the one caller that claims ``name`` in the window of ``every_ms``
        holding ``now_ms``. The claim lives one interval, so it outlasts its window."""
        window = now_ms // every_ms
        with redis_errors():
            return bool(self.client.set(keys.routine_claim(name, window), now_ms, nx=True, px=every_ms))
