"""Servers as the dispatcher sees them in Redis: pools, selection, slots, metrics.

Servers that share capabilities, groups and region form a *pool*. A task's candidate
pools come from small index sets (capability -> pools, group -> pools); inside a pool
the Lua scripts look only at the front of its ``avail`` zset. So a selection costs the
same with ten servers or ten thousand.

``FleetStore`` is one object for the rest of the code; its concerns live apart:

- ``pools``: what a server and a pool are (``ServerProfile``) and the per-process
  caches of pool lookups that keep them off the hot path;
- ``registry``: publishing, changing and removing servers, the algorithm;
- ``selection``: reserving and releasing slots (the load-balancer scripts);
- ``reads``: live figures, leases and slots for status, metrics and recovery;
- ``timers``: when each server's next health check and wake-up are due.
"""

from __future__ import annotations

from app.store.fleet.pools import POOL_CACHE_TTL_S, ServerProfile
from app.store.fleet.reads import Reads
from app.store.fleet.registry import Registry
from app.store.fleet.selection import Selection
from app.store.fleet.timers import Timers


class FleetStore(Registry, Selection, Reads, Timers):
    """Registers servers for selection and reserves/releases their slots atomically."""


__all__ = ["POOL_CACHE_TTL_S", "FleetStore", "ServerProfile"]
