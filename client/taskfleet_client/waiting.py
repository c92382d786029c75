"""Following a task (or a job) to its end by polling.

``watch`` yields a task each time its status or progress changes and stops after the
final state; ``wait`` is its last value (``watch_job`` and ``wait_job`` do the same for
a job). A task's updates come from its event stream (``taskfleet_client.events``); this
module is the other source with the same contract (changed snapshots, then the final
one, ``WaitTimeout`` at the deadline): polling ``GET /api/task/{id}`` (or ``GET
/api/jobs/{id}``) with a growing interval (0.2 s up to 2 s), for a server without
event streams, and for jobs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from taskfleet_client.errors import WaitTimeout


class Snapshot(Protocol):
    """What polling reads of a task or a job."""

    @property
    def status(self) -> str: ...
    @property
    def progress(self) -> int: ...
    @property
    def done(self) -> bool: ...


S = TypeVar("S", bound=Snapshot)


@dataclass(frozen=True)
class Backoff:
    """Seconds between two polls: ``first_s``, then ×``factor`` each time, at most
    ``max_s``. Short tasks are seen finishing quickly; long ones cost one request every
    ``max_s``."""

    first_s: float = 0.2
    max_s: float = 2.0
    factor: float = 1.5

    def delays(self) -> Iterator[float]:
        delay = self.first_s
        while True:
            yield delay
            delay = min(delay * self.factor, self.max_s)


def changed(before: Snapshot | None, after: Snapshot) -> bool:
    """Worth reporting: a first sight, or a new status or progress."""
    return before is None or (before.status, before.progress) != (after.status, after.progress)


def timed_out(object_id: str, timeout_s: float | None, last: Snapshot, kind: str = "task") -> WaitTimeout:
    return WaitTimeout(f"{kind} {object_id} is still {last.status} after {timeout_s:g} s", last)


def after_first(first: S, snapshots: Iterator[S]) -> Iterator[S]:
    """``snapshots`` less those that show nothing new since ``first`` (already shown)."""
    last: S | None = first
    for snapshot in snapshots:
        if changed(last, snapshot):
            yield snapshot
        last = snapshot


async def after_first_async(first: S, snapshots: AsyncIterator[S]) -> AsyncIterator[S]:
    """:func:`after_first` for the async client."""
    last: S | None = first
    async for snapshot in snapshots:
        if changed(last, snapshot):
            yield snapshot
        last = snapshot


def poll(
    fetch: Callable[[], S],
    object_id: str,
    timeout_s: float | None,
    backoff: Backoff,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    *,
    kind: str = "task",
) -> Iterator[S]:
    """Snapshots of a task (or a job: ``kind="job"``) by polling ``fetch`` until it is
    done."""
    deadline = None if timeout_s is None else clock() + timeout_s
    last: S | None = None
    for delay in backoff.delays():
        current = fetch()
        if changed(last, current):
            yield current
        last = current
        if current.done:
            return
        if deadline is not None:
            left = deadline - clock()
            if left <= 0:
                raise timed_out(object_id, timeout_s, current, kind)
            delay = min(delay, left)
        sleep(delay)


async def poll_async(
    fetch: Callable[[], Awaitable[S]],
    object_id: str,
    timeout_s: float | None,
    backoff: Backoff,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    *,
    kind: str = "task",
) -> AsyncIterator[S]:
    """:func:`poll` for the async client."""
    deadline = None if timeout_s is None else clock() + timeout_s
    last: S | None = None
    for delay in backoff.delays():
        current = await fetch()
        if changed(last, current):
            yield current
        last = current
        if current.done:
            return
        if deadline is not None:
            left = deadline - clock()
            if left <= 0:
                raise timed_out(object_id, timeout_s, current, kind)
            delay = min(delay, left)
        await sleep(delay)
