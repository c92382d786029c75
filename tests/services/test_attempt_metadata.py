"""What a backend reports about an attempt (``metadata`` in its callback) lands on the
attempt's record, on fakeredis+SQLite and real Redis+Postgres."""

import pytest

from app.core.errors import Conflict
from app.core.states import AttemptOutcome, TaskMode, TaskStatus
from app.services import outcomes, state_sync
from app.store import tasks_repo
from app.store.tasks_repo import AttemptEnd
from tests.services.helpers import register_backend, start_attempt, submit_task


def attempt_rows(ctx, task_id):
    with ctx.db.session() as s:
        return [(a.attempt, a.outcome, a.meta) for a in tasks_repo.attempts_of(s, task_id)]


@pytest.fixture
def running(ctx):
    """A callback task running as attempt 1 on s1 (a backend that is never called)."""
    register_backend(ctx, 9)
    task_id = submit_task(ctx, mode=TaskMode.CALLBACK, max_retries=1)
    start_attempt(ctx, task_id)
    return task_id


def test_progress_metadata_is_kept_on_the_open_attempt_and_the_end_replaces_it(ctx, running):
    outcomes.callback(ctx, running, 1, {"status": "PROCESSING", "progress": 10, "metadata": {"step": 1}})
    assert attempt_rows(ctx, running) == [(1, None, {"step": 1})]
    outcomes.callback(ctx, running, 1, {"status": "PROCESSING", "metadata": {"step": 2}})
    assert attempt_rows(ctx, running) == [(1, None, {"step": 2})]
    done = {"processing_time": 1.5, "model_version": "v3"}
    outcomes.callback(ctx, running, 1, {"status": "COMPLETED", "result": {"ok": 1}, "metadata": done})
    assert attempt_rows(ctx, running) == [(1, "COMPLETED", done)]


def test_an_end_without_metadata_keeps_what_progress_reported(ctx, running):
    outcomes.callback(ctx, running, 1, {"status": "PROCESSING", "metadata": {"gpu": "a100"}})
    outcomes.callback(ctx, running, 1, {"status": "COMPLETED", "result": 1, "metadata": None})
    assert attempt_rows(ctx, running) == [(1, "COMPLETED", {"gpu": "a100"})]


def test_a_failed_attempt_keeps_its_metadata_and_the_retry_starts_clean(ctx, running):
    failed = {"status": "FAILED", "error": "out of memory", "metadata": {"vram_gb": 80}}
    state = outcomes.callback(ctx, running, 1, failed)
    assert state.status is TaskStatus.PENDING  # retried: one retry left
    assert ctx.fleet.reserve(running, 2, ("echo",), now_ms=ctx.now_ms()) == "s1"
    now = ctx.now_ms()
    state_sync.apply(
        ctx,
        running,
        [TaskStatus.PENDING],
        TaskStatus.PROCESSING,
        1,
        attempt=2,
        server_id="s1",
        started_ms=now,
    )
    assert attempt_rows(ctx, running) == [(1, "FAILED", {"vram_gb": 80}), (2, None, None)]


def test_a_late_callback_changes_no_metadata(ctx, running):
    outcomes.callback(ctx, running, 1, {"status": "COMPLETED", "result": 1, "metadata": {"n": 1}})
    with pytest.raises(Conflict):
        outcomes.callback(ctx, running, 1, {"status": "PROCESSING", "metadata": {"n": 2}})
    with pytest.raises(Conflict):
        outcomes.callback(ctx, running, 1, {"status": "FAILED", "metadata": {"n": 3}})
    assert attempt_rows(ctx, running) == [(1, "COMPLETED", {"n": 1})]


def test_a_duplicate_final_callback_changes_no_metadata(ctx, running):
    outcomes.callback(ctx, running, 1, {"status": "COMPLETED", "result": 1, "metadata": {"n": 1}})
    outcomes.callback(ctx, running, 1, {"status": "COMPLETED", "result": 1, "metadata": {"n": 9}})
    assert attempt_rows(ctx, running) == [(1, "COMPLETED", {"n": 1})]


def test_the_attempt_end_path_takes_metadata_for_any_reporter(ctx, running):
    """Poll answers (which have the callback's shape) end attempts through the same path."""
    end = AttemptEnd(1, AttemptOutcome.TIMEOUT, "timed out", ctx.now_ms(), {"polls": 12})
    state_sync.apply(ctx, running, [TaskStatus.PROCESSING], TaskStatus.TIMEOUT, 1, end, finished_ms=end.at_ms)
    assert attempt_rows(ctx, running) == [(1, "TIMEOUT", {"polls": 12})]
