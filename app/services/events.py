"""A task's event stream for clients: what Redis holds, merged with what the database
can rebuild, then followed live.

Replay (``replay``): the ``status`` and ``progress`` events rebuilt from the task's
transition rows, merged with the entries of its Redis stream (chunks exist only there),
by id, none twice; the same ids either way (``app.core.events``), so a stream Redis lost,
expired or never had (a task that waited in the database only) still replays whole,
less the chunks. When the task is final, ``result`` (the task as the API shows it) ends
the stream.

Following (``follow``): after the replay, each open stream waits on the process's
``EventHub``: one thread (a greenlet under gevent) runs one XREAD over every watched
task's stream and wakes the streams that have news, so a thousand open streams hold no
Redis connection each. A stream that hears nothing for ``CHECK_S`` compares the task's
version with what it has sent, and replays from the database when Redis missed a
transition (a restart that lost it, a task rebuilt from its row).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from app.core.clock import datetime_to_ms
from app.core.errors import StoreUnavailable
from app.core.events import (
    CHUNK,
    KEEPALIVE_S,
    PROGRESS,
    RESULT,
    RESULT_SEQ,
    STATUS,
    Event,
    EventId,
    status_data,
    transition_event,
)
from app.core.states import is_final
from app.core.task import TaskState
from app.services import state_sync
from app.services.context import Context
from app.store import tasks_repo
from app.store.events import EventLog, StreamEntry

log = logging.getLogger("taskfleet.events")

#: Seconds a quiet stream waits before it checks the task's version against what it has
#: sent (Redis lost an event, or the task moved on in the database only).
CHECK_S = 3.0
#: Milliseconds one XREAD of the hub blocks: how long a newly watched stream may wait to
#: be in it (the stream reads its own backlog itself, so nothing is missed meanwhile).
HUB_BLOCK_MS = 250
#: Seconds the hub waits after Redis failed before it tries again.
HUB_RETRY_S = 0.5


def entry_event(entry: StreamEntry) -> Event:
    """The client's event for one Redis stream entry."""
    fields = entry.fields
    if entry.event == CHUNK:
        return Event(entry.id, CHUNK, {"data": json.loads(fields["data"])})
    if entry.event == PROGRESS:
        return Event(entry.id, PROGRESS, {"progress": int(fields["progress"])})
    data = status_data(
        fields["status"],
        int(fields["attempt"]),
        fields.get("server_id"),
        int(fields["at"]),
        fields.get("error"),
    )
    return Event(entry.id, STATUS, data)


def rebuilt_events(ctx: Context, task_id: str) -> tuple[list[Event], int]:
    """The task's ``status`` and ``progress`` events from its transition rows, and the
    last version the rows have (a transition may have no event: see
    ``transition_event``)."""
    with ctx.db.session() as session:
        rows = tasks_repo.transitions_of(session, task_id)
    out, previous = [], None
    for row in rows:
        event = transition_event(
            row.version,
            row.from_status,
            row.to_status,
            row.attempt,
            row.server_id,
            datetime_to_ms(row.at) or 0,
            row.progress,
            previous,
            row.error,
        )
        previous = row.progress
        if event is not None:
            out.append(event)
    return out, rows[-1].version if rows else 0


def replay(ctx: Context, task_id: str, after: EventId) -> tuple[list[Event], int]:
    """Every event after ``after`` that Redis or the database has, by id; and the last
    version they cover."""
    rebuilt, covered = rebuilt_events(ctx, task_id)
    found = {e.id: e for e in rebuilt if e.id > after}
    try:
        entries = ctx.events.after(task_id, after)
    except StoreUnavailable:
        entries = []  # the database's events still tell the story, less the chunks
    found.update((entry.id, entry_event(entry)) for entry in entries)
    events = [found[key] for key in sorted(found)]
    if events:
        covered = max(covered, events[-1].id.version)
    return events, max(covered, after.version)


def result_event(state: TaskState, render: Callable[[TaskState], Any]) -> Event:
    return Event(EventId(state.version, RESULT_SEQ), RESULT, render(state))


def _contiguous(cursor: EventId, covered: int, entry: StreamEntry) -> bool:
    """Whether ``entry`` follows ``cursor`` (versions up to ``covered`` seen) with no event
    possibly lost between: a chunk of the same version, or the next version's transition."""
    return entry.id.version == cursor.version or entry.id == EventId(covered + 1, 0)


class EventHub:
    """One XREAD over every watched task stream for the whole process; wakes the waiters
    of the streams that have news. Started on first use."""

    def __init__(self, log_store: EventLog, block_ms: int = HUB_BLOCK_MS) -> None:
        self.log = log_store
        self.block_ms = block_ms
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = {}
        self._cursors: dict[str, EventId] = {}
        self._watching = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, task_id: str, cursor: EventId) -> threading.Event:
        """A flag set whenever the task's stream gets entries after ``cursor``."""
        flag = threading.Event()
        with self._lock:
            self._waiters.setdefault(task_id, set()).add(flag)
            known = self._cursors.get(task_id)
            self._cursors[task_id] = cursor if known is None else min(known, cursor)
            self._watching.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="event-hub", daemon=True)
                self._thread.start()
        return flag

    def unwatch(self, task_id: str, flag: threading.Event) -> None:
        with self._lock:
            flags = self._waiters.get(task_id)
            if flags is not None:
                flags.discard(flag)
                if not flags:
                    del self._waiters[task_id]
                    self._cursors.pop(task_id, None)
            if not self._waiters:
                self._watching.clear()

    def watched(self) -> int:
        with self._lock:
            return len(self._waiters)

    def _run(self) -> None:
        while True:
            self._watching.wait(timeout=5)
            with self._lock:
                cursors = dict(self._cursors)
            if not cursors:
                continue
            try:
                news = self.log.read_many(cursors, self.block_ms)
            except StoreUnavailable:
                time.sleep(HUB_RETRY_S)
                continue
            except Exception:  # noqa: BLE001 - the hub must outlive any one bad reply
                log.exception("event hub read failed")
                time.sleep(HUB_RETRY_S)
                continue
            with self._lock:
                for task_id, entries in news.items():
                    if task_id in self._cursors and entries:
                        self._cursors[task_id] = max(self._cursors[task_id], entries[-1].id)
                        for flag in self._waiters.get(task_id, ()):
                            flag.set()


def hub_of(ctx: Context) -> EventHub:
    """The process's hub (on the Context: one per process, built on first use)."""
    with _HUB_LOCK:
        if ctx.event_hub is None:
            ctx.event_hub = EventHub(ctx.events)
        return ctx.event_hub


_HUB_LOCK = threading.Lock()


def follow(
    ctx: Context,
    task_id: str,
    after: EventId,
    render: Callable[[TaskState], Any],
    keepalive_s: float = KEEPALIVE_S,
    check_s: float = CHECK_S,
) -> Iterator[Event | None]:
    """The task's events after ``after``, as they happen, ending with ``result`` once
    the task is final; ``None`` is a keep-alive (``keepalive_s`` of silence)."""
    hub = hub_of(ctx)
    cursor = after
    flag: threading.Event | None = None
    try:
        events, covered = replay(ctx, task_id, cursor)
        while True:
            for event in events:
                yield event
                cursor = event.id
            covered = max(covered, cursor.version)
            if cursor.seq == RESULT_SEQ:
                return
            state = _current(ctx, task_id)
            if state is None:
                return  # the task is gone (deleted with its records)
            if is_final(state.status) and covered >= state.version:
                yield result_event(state_sync.with_payload(ctx, state), render)
                return
            if state.version > covered:
                events, covered = replay(ctx, task_id, cursor)
                if events or covered >= state.version:
                    continue
            if flag is None:
                flag = hub.watch(task_id, cursor)
                events, covered = _read_new(ctx, task_id, cursor, covered)
                if events:
                    continue
            events, covered = yield from _wait(ctx, flag, task_id, cursor, covered, keepalive_s, check_s)
    finally:
        if flag is not None:
            hub.unwatch(task_id, flag)


def _current(ctx: Context, task_id: str) -> TaskState | None:
    """The task now: its hot state, or its row while Redis is unavailable."""
    try:
        return state_sync.read(ctx, task_id)
    except StoreUnavailable:
        with ctx.db.session() as session:
            row = tasks_repo.get_row(session, task_id)
            return None if row is None else tasks_repo.row_to_state(row)


def _read_new(ctx: Context, task_id: str, cursor: EventId, covered: int) -> tuple[list[Event], int]:
    """The Redis entries after ``cursor``, or a replay with the database when one may
    have been lost before them."""
    try:
        entries = ctx.events.after(task_id, cursor)
    except StoreUnavailable:
        return [], covered
    if entries and not _contiguous(cursor, covered, entries[0]):
        return replay(ctx, task_id, cursor)
    return [entry_event(entry) for entry in entries], covered


def _wait(
    ctx: Context,
    flag: threading.Event,
    task_id: str,
    cursor: EventId,
    covered: int,
    keepalive_s: float,
    check_s: float,
) -> Generator[None, None, tuple[list[Event], int]]:
    """Wait for news of the task, yielding keep-alives (None) while it is quiet; return
    its new events (from Redis, or replayed from the database when Redis missed some),
    which may be none after a check found the task moved on."""
    quiet_since = time.monotonic()
    while True:
        left = keepalive_s - (time.monotonic() - quiet_since)
        if flag.wait(timeout=max(0.0, min(check_s, left))):
            flag.clear()
            events, covered = _read_new(ctx, task_id, cursor, covered)
            if events:
                return events, covered
            continue
        if time.monotonic() - quiet_since >= keepalive_s:
            yield None
            quiet_since = time.monotonic()
        try:
            version = ctx.events.version_of(task_id)
        except StoreUnavailable:
            continue
        if version is None or version > covered:
            return replay(ctx, task_id, cursor)
