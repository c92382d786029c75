"""Output a backend streams while its attempt runs: each chunk goes to the task's event
stream at once (``chunk`` events, ids ``<version>-<n>``), from a sync answer read as
server-sent events or from a callback's ``chunk``."""

from __future__ import annotations

import logging
from typing import Any

from app.backends import ChunkSink
from app.core.errors import StoreUnavailable
from app.services.context import Context
from app.store.hot_state import HotStateMissing

log = logging.getLogger("taskfleet.streaming")


def relay(ctx: Context, task_id: str, attempt: int) -> ChunkSink:
    """Where a streamed answer's chunks go: the task's events, while ``attempt`` runs.
    Raises ``Conflict`` once the task moved on (the caller stops reading). A chunk Redis
    cannot take (unavailable, or it lost the task) is dropped: chunks live in Redis only,
    and the answer still completes the task."""

    def send(chunks: list[Any]) -> None:
        try:
            ctx.events.append_chunks(task_id, attempt, chunks)
        except (StoreUnavailable, HotStateMissing) as exc:
            log.warning("task %s: %d chunk(s) dropped: %s", task_id, len(chunks), type(exc).__name__)

    return send
