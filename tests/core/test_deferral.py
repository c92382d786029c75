"""The pure rules of delayed and dependent tasks."""

import pytest

from app.core import deferral
from app.core.errors import InvalidInput
from app.core.states import TaskStatus

NOW = 1_800_000_000_000
C, P, F = TaskStatus.COMPLETED, TaskStatus.PROCESSING, TaskStatus.FAILED


def test_the_start_time_is_run_at_or_now_plus_delay_never_both():
    assert deferral.start_ms(None, None, NOW) is None
    assert deferral.start_ms(NOW + 5, None, NOW) == NOW + 5
    assert deferral.start_ms(None, 2.5, NOW) == NOW + 2500
    assert deferral.start_ms(None, 0, NOW) == NOW
    with pytest.raises(InvalidInput):
        deferral.start_ms(NOW, 1, NOW)
    with pytest.raises(InvalidInput):
        deferral.start_ms(None, deferral.MAX_DELAY_S + 1, NOW)
    with pytest.raises(InvalidInput):
        deferral.start_ms(None, -1, NOW)


def test_a_new_task_waits_for_dependencies_first_then_for_its_time():
    assert deferral.initial_status(None, {}, NOW) is TaskStatus.PENDING
    assert deferral.initial_status(NOW, {}, NOW) is TaskStatus.PENDING  # due now: at once
    assert deferral.initial_status(NOW - 1, {}, NOW) is TaskStatus.PENDING
    assert deferral.initial_status(NOW + 1, {}, NOW) is TaskStatus.SCHEDULED
    assert deferral.initial_status(NOW + 1, {"a": C, "b": P}, NOW) is TaskStatus.WAITING
    assert deferral.initial_status(None, {"a": C, "b": C}, NOW) is TaskStatus.PENDING
    assert deferral.initial_status(NOW + 1, {"a": C}, NOW) is TaskStatus.SCHEDULED


def test_a_released_task_is_scheduled_only_while_its_time_is_ahead():
    assert deferral.status_when_ready(None, NOW) is TaskStatus.PENDING
    assert deferral.status_when_ready(NOW + 1, NOW) is TaskStatus.SCHEDULED
    assert deferral.status_when_ready(NOW, NOW) is TaskStatus.PENDING


def test_the_broken_dependency_is_one_that_ended_otherwise_or_vanished():
    assert deferral.broken_dependency({"a": C, "b": P}) is None
    assert deferral.broken_dependency({"b": TaskStatus.CANCELLED, "a": TaskStatus.TIMEOUT}) == "a"
    assert deferral.broken_dependency({"a": C, "z": None}) == "z"
    assert deferral.all_completed({"a": C, "b": C}) and not deferral.all_completed({"a": C, "b": None})
    assert deferral.upstream_failed_error("a", F) == "upstream_failed: dependency a ended FAILED"


def test_unknown_unreadable_and_failed_dependencies_are_each_named():
    found = {"mine": ("alice", C), "bobs": ("bob", P), "dead": ("alice", TaskStatus.CANCELLED)}
    wanted = ["mine", "bobs", "dead", "ghost"]
    assert deferral.dependency_problems(wanted, found, "alice") == {
        "bobs": "no such task",
        "dead": "already CANCELLED",
        "ghost": "no such task",
    }
    # An admin may wait for anyone's task.
    assert deferral.dependency_problems(["bobs"], found, None) == {}
