"""Limits per client: admitting each submission against its client's rate and cap of
unfinished tasks, and the limits and fair-share weights admins set.

A submission of N tasks (``POST /api/task``: 1, a job: its tasks, a manual retry: 1)
is admitted in one Lua call (``client_admit.lua``) that takes N tokens from the
client's bucket and room for N unfinished tasks, or refuses with a wait (429). The
unfinished tasks are counted in Redis as the database's count at the last recount plus
what was stored and admitted since, which never undercounts, so concurrent submits
never take a client past its cap. A recount (one ``COUNT`` on the index tasks(owner,
status)) runs only when Redis has no count (a new or idle client, a Redis that lost its
data) or when a submission would not fit (at most once a second per client): tasks
that finished since the last recount make room then.

If Redis is unreachable the submission is let through unchecked: a task is stored and
answered 201 without Redis (the orphan sweep starts it later), and limits must not
make that outage worse. A Redis that refuses writes (full) refuses the submission (503),
as it would refuse the task's hot state.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from app.config import Settings
from app.core.client_limits import (
    UNFINISHED_RETRY_AFTER_S,
    ClientLimits,
    StoredLimits,
    never_fits,
    retry_after_s,
)
from app.core.errors import InvalidInput, RateLimited, RedisRefusesWrites, StoreUnavailable, TooManyUnfinished
from app.services.context import Context
from app.store import client_limits_repo
from app.store.client_state import Admit, Usage

log = logging.getLogger("taskfleet.clients")

#: Milliseconds a recount may take before another may start for the same client.
RECOUNT_LEASE_MS = 10_000
#: Milliseconds between two recounts of one client refused for its cap.
RECOUNT_MIN_INTERVAL_MS = 1_000
#: Milliseconds after which an admission that never settled (its process died) no
#: longer holds room under the cap; far longer than storing a job takes.
STALE_ADMISSION_MS = 60_000


def defaults(settings: Settings) -> ClientLimits:
    return ClientLimits(
        submits_per_s=settings.client_submits_per_s,
        burst=settings.client_burst,
        max_unfinished=settings.client_max_unfinished,
    )


def limits_of(ctx: Context, sub: str) -> ClientLimits:
    """The limits in force for ``sub`` (cached per process for a few seconds)."""
    return ctx.client_limits.get(sub).effective(defaults(ctx.settings))


@dataclass
class Admission:
    """A submission admitted: the caller sets ``stored`` once its tasks are durable."""

    sub: str
    id: str
    count: int
    stored: bool = False


@contextmanager
def admitted(ctx: Context, sub: str, count: int) -> Iterator[Admission]:
    """Admit ``sub``'s submission of ``count`` tasks for the block, or raise: 422 if it
    can never fit the client's limits, ``RateLimited`` or ``TooManyUnfinished`` (429
    with a wait) if not now. The block sets ``stored`` when its tasks are durable."""
    limits = limits_of(ctx, sub)
    reason = never_fits(limits, count)
    if reason:
        raise InvalidInput(
            reason, {"tasks": count, "burst": limits.burst, "maxUnfinished": limits.max_unfinished}
        )
    admission = Admission(sub, uuid.uuid4().hex, count)
    checked = True
    try:
        _admit(ctx, admission, limits)
    except RedisRefusesWrites:
        raise  # full: it would refuse the task too (503, nothing stored)
    except StoreUnavailable:
        log.warning("client limits of %r not checked: a store is unavailable", sub)
        checked = False
    try:
        yield admission
    finally:
        if checked:
            _settle(ctx, admission)


def _settle(ctx: Context, admission: Admission) -> None:
    try:
        ctx.clients.settle(admission.sub, admission.id, admission.count, admission.stored)
    except StoreUnavailable:
        log.warning("admission of %r not settled: redis unavailable (a recount drops it)", admission.sub)


def _admit(ctx: Context, admission: Admission, limits: ClientLimits) -> None:
    sub, count = admission.sub, admission.count
    code, value = ctx.clients.admit(sub, limits, count, admission.id, ctx.now_ms())
    if code is Admit.NOT_COUNTED:
        own = _recount(ctx, sub, limits, forced=True)
        code, value = ctx.clients.admit(sub, limits, count, admission.id, ctx.now_ms(), own)
    elif code is Admit.FULL and _recount(ctx, sub, limits, forced=False) is not None:
        code, value = ctx.clients.admit(sub, limits, count, admission.id, ctx.now_ms())
    if code is Admit.TOO_FAST:
        wait_s = retry_after_s(value)
        raise RateLimited(
            f"client {sub!r} submits faster than {limits.submits_per_s:g} tasks per second "
            f"(burst {limits.burst}): try again in {wait_s} s",
            wait_s,
            {"tasks": count, "submitsPerSecond": limits.submits_per_s, "burst": limits.burst},
        )
    if code is Admit.FULL:
        raise TooManyUnfinished(
            f"client {sub!r} has {value} unfinished tasks; {count} more would pass its cap of "
            f"{limits.max_unfinished}",
            UNFINISHED_RETRY_AFTER_S,
            {"tasks": count, "unfinished": value, "maxUnfinished": limits.max_unfinished},
        )
    if code is not Admit.ADMITTED:  # NOT_COUNTED after a recount: Redis lost the hash again
        raise StoreUnavailable("client's unfinished tasks could not be counted")


def _recount(ctx: Context, sub: str, limits: ClientLimits, forced: bool) -> tuple[int, int] | None:
    """Count ``sub``'s unfinished tasks in the database and install the count unless
    another recount holds the client: (count, mark) for ``ClientState.admit``. Unforced,
    None when a recount ran less than a second ago (nothing is counted then)."""
    generation, mark = ctx.clients.begin_count(
        sub, limits, ctx.now_ms(), RECOUNT_LEASE_MS, RECOUNT_MIN_INTERVAL_MS, forced
    )
    if generation == 0 and not forced:
        return None
    with ctx.db.session() as session:
        count = client_limits_repo.count_unfinished(session, sub)
    if generation:
        now = ctx.now_ms()
        ctx.clients.end_count(sub, limits, generation, count, mark, now, now - STALE_ADMISSION_MS)
    return count, mark


# -- admin -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LimitsView:
    """A client's limits as the API shows them."""

    sub: str
    stored: StoredLimits
    effective: ClientLimits
    usage: Usage
    unfinished: int


def get(ctx: Context, sub: str) -> LimitsView:
    """What an admin set for ``sub``, what is in force, and its usage now (its
    unfinished tasks counted in the database)."""
    with ctx.db.session() as session:
        stored = client_limits_repo.get(session, sub)
        unfinished = client_limits_repo.count_unfinished(session, sub)
    effective = stored.effective(defaults(ctx.settings))
    return LimitsView(sub, stored, effective, ctx.clients.usage(sub, effective, ctx.now_ms()), unfinished)


def put(ctx: Context, sub: str, changes: dict[str, float | int | None]) -> LimitsView:
    """Change some of ``sub``'s limits (None: back to the default) and publish its weight."""
    with ctx.db.session() as session:
        stored = client_limits_repo.get(session, sub).updated(changes)
        client_limits_repo.put(session, sub, stored, ctx.now_ms())
    _published(ctx, sub, stored)
    log.info("limits of client %r set: %s", sub, changes)
    return get(ctx, sub)


def delete(ctx: Context, sub: str) -> LimitsView:
    """Back to the defaults for ``sub`` (whether or not it had limits of its own)."""
    with ctx.db.session() as session:
        found = client_limits_repo.delete(session, sub)
    _published(ctx, sub, StoredLimits())
    if found:
        log.info("limits of client %r reset to the defaults", sub)
    return get(ctx, sub)


def _published(ctx: Context, sub: str, stored: StoredLimits) -> None:
    ctx.client_limits.forget(sub)
    ctx.clients.put_weight(sub, stored.weight)


def publish_weights(ctx: Context) -> int:
    """Publish every weight of the database (after a Redis loss); returns how many."""
    with ctx.db.session() as session:
        weights = client_limits_repo.weights(session)
    ctx.clients.publish_weights(weights)
    if weights:
        log.info("published the fair-share weights of %d clients", len(weights))
    return len(weights)
