"""The slot ledger: slots held in Redis against attempts the database has running.

Every running attempt holds one lease (``cost`` slot units) on its server, and every
lease belongs to a running attempt. *Drift* is where the two books disagree, in slot
units per server: the units of leases no running attempt explains minus the units of
running attempts that hold no lease. A lease or an attempt counts only once it has had
no counterpart for ``grace_ms``: a dispatch between its reservation in Redis and its
database write is not drift.

Counting in units (not leases) compares like with like: a lease carries the cost it
was reserved with, an attempt the cost of its task type (``SLOT_COSTS``), and the
server's in-flight figure is in units too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: Seconds after which a slot no running attempt uses is taken back (a worker died
#: between reserving it and starting the attempt, or before freeing it). Also how long
#: a slot is kept on purpose after a predict timeout or a cancel: the backend may still
#: be working on the call.
RECLAIM_AFTER_S = 60


@dataclass(frozen=True)
class Lease:
    """A slot held in Redis: ``cost`` units on ``server_id`` since ``reserved_ms``."""

    server_id: str
    task_id: str
    attempt: int
    cost: int
    reserved_ms: int


@dataclass(frozen=True)
class RunningAttempt:
    """An attempt the database has running: its task is PROCESSING at this attempt on
    this server, and the attempt has not ended. ``cost``: its task type's slot units."""

    server_id: str
    task_id: str
    attempt: int
    task_type: str
    cost: int
    started_ms: int


@dataclass(frozen=True)
class Drifted:
    """What disagrees on one server: leases no running attempt explains, and running
    attempts without a lease, each past the grace."""

    leases: tuple[Lease, ...] = ()
    attempts: tuple[RunningAttempt, ...] = ()

    @property
    def units(self) -> int:
        """Slot units held in Redis minus units the database has running (past the grace)."""
        return sum(lease.cost for lease in self.leases) - sum(a.cost for a in self.attempts)


def old_units(leases: Iterable[Lease], cutoff_ms: int) -> dict[str, int]:
    """Units of the leases reserved at or before ``cutoff_ms``, by server."""
    units: dict[str, int] = {}
    for lease in leases:
        if lease.reserved_ms <= cutoff_ms:
            units[lease.server_id] = units.get(lease.server_id, 0) + lease.cost
    return units


def suspects(lease_units: dict[str, int], attempt_units: dict[str, int]) -> set[str]:
    """Servers whose old leases and old running attempts add up to different units:
    the only ones worth comparing task by task."""
    return {
        s
        for s in lease_units.keys() | attempt_units.keys()
        if lease_units.get(s, 0) != attempt_units.get(s, 0)
    }


def compare(
    leases: Iterable[Lease],
    attempts: Iterable[RunningAttempt],
    cutoff_ms: int,
    also_held: Iterable[Lease] = (),
) -> dict[str, Drifted]:
    """Match leases and running attempts by (server, task, attempt); what is left
    unmatched and older than ``cutoff_ms`` (reserved or started at or before it) is
    drift, by server (servers without drift are left out). ``also_held``: leases seen
    in another read, which keep an attempt from counting as one without a lease (a
    caller reads Redis before and after the database, and passes the leases of both
    reads here and those seen in both as ``leases``)."""
    held = {(lease.server_id, lease.task_id, lease.attempt): lease for lease in leases}
    seen = held.keys() | {(lease.server_id, lease.task_id, lease.attempt) for lease in also_held}
    running = {(a.server_id, a.task_id, a.attempt): a for a in attempts}
    stray: dict[str, list[Lease]] = {}
    bare: dict[str, list[RunningAttempt]] = {}
    for key, lease in held.items():
        if key not in running and lease.reserved_ms <= cutoff_ms:
            stray.setdefault(lease.server_id, []).append(lease)
    for key, attempt in running.items():
        if key not in seen and attempt.started_ms <= cutoff_ms:
            bare.setdefault(attempt.server_id, []).append(attempt)
    return {
        server_id: Drifted(tuple(stray.get(server_id, ())), tuple(bare.get(server_id, ())))
        for server_id in sorted(stray.keys() | bare.keys())
    }
