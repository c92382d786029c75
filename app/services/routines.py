"""The tick: beat's one periodic job runs, in-process, each maintenance routine whose
interval has come round (``beat_schedule.ROUTINES``).

Why one job: a Celery job per routine was six messages a second, each with three task
events that Flower listed, so its task list showed maintenance instead of dispatches.

How a routine is due: it is claimed in Redis for the current window of its interval
(``RoutineClaims``) just before it runs, so two beats (two ticks a second) or two
workers run it once per interval. Routines run one after another, shortest interval
first, and each is claimed only when its turn comes: a slow routine delays the ones
after it in the same tick until the next tick (a second later, in another greenlet of
the worker) claims and runs them itself. A routine that runs longer than its interval
may overlap its next run, as it could when each was a Celery job: every routine is
safe to run twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from app.core.errors import StoreUnavailable
from app.services.context import Context

log = logging.getLogger("taskfleet.tick")

#: A maintenance routine: a use case that takes the Context and reports what it did.
Routine = Callable[[Context], object]


def run_due(ctx: Context, routines: Mapping[str, Routine], every_s: Mapping[str, float]) -> dict[str, object]:
    """Run each routine of ``every_s`` whose window no one has claimed yet; what each
    one that ran returned, by name ("failed" or "unavailable" when it raised)."""
    ran: dict[str, object] = {}
    for name, interval_s in sorted(every_s.items(), key=lambda item: item[1]):
        try:
            if not ctx.routine_claims.claim(name, round(interval_s * 1000), ctx.now_ms()):
                continue
        except StoreUnavailable:
            log.warning("tick: redis unavailable, no routine claimed")
            break
        ran[name] = _run(ctx, name, routines[name])
    return ran


def _run(ctx: Context, name: str, routine: Routine) -> object:
    try:
        return routine(ctx)
    except StoreUnavailable as exc:
        log.warning("routine %s: %s", name, exc)
        return "unavailable"
    except Exception:  # noqa: BLE001 - each routine was its own job: one failing must not stop the rest
        log.exception("routine %s failed", name)
        return "failed"
