"""Tasks waiting for a free slot: parking them, and waking the best ones a freed
server can serve (priority first, then age) without busy polling."""

from __future__ import annotations

from app.core.states import TaskStatus
from app.core.task import TaskState, front_of_line_score, waiting_score
from app.services.context import Context

#: Entries taken per wake-up beyond the wanted count, to skip ones that left PENDING.
STALE_MARGIN = 8


def park(ctx: Context, state: TaskState, front: bool = False) -> None:
    """Put a PENDING task in its profile's waiting line (``front``: ahead of its priority)."""
    spec = state.spec
    score = front_of_line_score(spec.priority) if front else waiting_score(spec.priority, state.created_ms)
    ctx.waiting.park(state.id, spec.capabilities, spec.group, score)


def which_parked(ctx: Context, states: list[TaskState]) -> list[bool]:
    """For each task: is it in its waiting line? (One round trip for them all.)"""
    return ctx.waiting.which_contain([(s.id, s.spec.capabilities, s.spec.group) for s in states])


def wake(ctx: Context, count: int, server_id: str | None = None) -> int:
    """Enqueue dispatch for up to ``count`` waiting tasks, best first, among the profiles
    that ``server_id`` can serve (or, without a server, that any server has room for)."""
    if count <= 0:
        return 0
    profiles = ctx.waiting.profiles()
    if server_id is not None:
        served = ctx.fleet.server_serves(server_id)
        eligible = [pid for pid, (caps, group) in profiles.items() if served(caps, group)]
    else:
        eligible = [pid for pid, (caps, group) in profiles.items() if ctx.fleet.has_room(caps, group)]
    woken = 0
    while woken < count:
        taken = ctx.waiting.take(eligible, count - woken)
        if not taken:
            break
        for task_id, state in zip(taken, ctx.tasks.get_many(taken), strict=True):
            if state is not None and state.status is TaskStatus.PENDING:
                ctx.queue.enqueue(task_id, state.attempt)
                woken += 1
    return woken


def wake_for_free_slots(ctx: Context) -> int:
    """The beat safety net: as many waiting tasks as the fleet has free slots."""
    free = ctx.fleet.free_slots()
    return wake(ctx, free) if free > 0 else 0
