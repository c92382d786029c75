"""PROCESSING updates record something only when they change something: a backend that
repeats or replays an update costs no transition row and no version; on fakeredis with
SQLite and on real Redis with Postgres."""

from __future__ import annotations

import pytest

from app.core.events import START
from app.core.states import TaskMode, TaskStatus
from app.services import outcomes, state_sync
from app.store import tasks_repo
from tests.services.helpers import register_backend, start_attempt, submit_task


@pytest.fixture
def running(ctx):
    """A callback task running as attempt 1 on s1 (a backend that is never called)."""
    register_backend(ctx, 9)
    task_id = submit_task(ctx, mode=TaskMode.CALLBACK)
    start_attempt(ctx, task_id)
    return task_id


def transitions(ctx, task_id):
    with ctx.db.session() as s:
        return [(t.to_status, t.version) for t in tasks_repo.transitions_of(s, task_id)]


def test_the_same_processing_update_fifty_times_records_one_transition(ctx, running):
    update = {"status": "PROCESSING", "progress": 40, "metadata": {"step": "decode"}}
    answers = [outcomes.callback(ctx, running, 1, dict(update)) for _ in range(50)]
    assert transitions(ctx, running) == [("PENDING", 1), ("PROCESSING", 2), ("PROCESSING", 3)]
    assert {(a.status, a.progress, a.version) for a in answers} == {(TaskStatus.PROCESSING, 40, 3)}
    assert state_sync.load(ctx, running).version == 3
    assert outcomes.complete(ctx, running, 1, {"ok": True}).version == 4


def test_a_progress_lower_than_the_tasks_is_a_late_update_and_changes_nothing(ctx, running):
    outcomes.callback(ctx, running, 1, {"status": "PROCESSING", "progress": 60})
    late = outcomes.callback(ctx, running, 1, {"status": "PROCESSING", "progress": 30})
    assert (late.progress, late.version) == (60, 3)
    assert transitions(ctx, running)[-1] == ("PROCESSING", 3)
    later = outcomes.callback(ctx, running, 1, {"status": "PROCESSING", "progress": 70})
    assert (later.progress, later.version) == (70, 4)


def test_new_metadata_is_a_change_the_same_metadata_or_none_is_not(ctx, running):
    outcomes.callback(ctx, running, 1, {"status": "PROCESSING", "metadata": {"gpu": "a100"}})
    outcomes.callback(ctx, running, 1, {"status": "PROCESSING", "metadata": {"gpu": "a100"}})
    outcomes.callback(ctx, running, 1, {"status": "PROCESSING"})
    outcomes.callback(ctx, running, 1, {"status": "PROCESSING", "progress": 0})
    assert [v for _, v in transitions(ctx, running)] == [1, 2, 3]
    changed = outcomes.callback(ctx, running, 1, {"status": "PROCESSING", "metadata": {"gpu": "h100"}})
    assert changed.version == 4
    with ctx.db.session() as s:
        assert tasks_repo.attempt_metadata_of(s, running, 1) == {"gpu": "h100"}


def test_a_chunk_is_relayed_even_when_its_update_changes_nothing_else(ctx, running):
    outcomes.callback(ctx, running, 1, {"status": "PROCESSING", "progress": 50})
    for token in ("a", "b", "a"):
        outcomes.callback(ctx, running, 1, {"status": "PROCESSING", "progress": 50, "chunk": token})
    chunks = [e for e in ctx.events.after(running, START) if e.fields.get("event") == "chunk"]
    assert len(chunks) == 3
    assert [v for _, v in transitions(ctx, running)] == [1, 2, 3]
