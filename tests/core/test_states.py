from app.core.states import (
    ALLOWED_TRANSITIONS,
    FINAL_STATUSES,
    TaskStatus,
    attempts_left,
    is_allowed,
    sources_of,
)


def test_final_states_only_leave_by_retry_and_never_to_processing_directly():
    for source, target in ALLOWED_TRANSITIONS:
        if source in FINAL_STATUSES:
            assert source in (TaskStatus.FAILED, TaskStatus.TIMEOUT)
            assert target is TaskStatus.PENDING


def test_completed_and_cancelled_are_final_for_good():
    for target in TaskStatus:
        assert not is_allowed("COMPLETED", target)
        assert not is_allowed("CANCELLED", target)


def test_every_unfinished_state_can_be_cancelled():
    assert sources_of(TaskStatus.CANCELLED) == frozenset(set(TaskStatus) - FINAL_STATUSES)


def test_processing_is_entered_only_from_pending():
    assert sources_of(TaskStatus.PROCESSING) == {TaskStatus.PENDING, TaskStatus.PROCESSING}


def test_the_budget_is_one_attempt_plus_max_retries_since_the_last_manual_retry():
    assert attempts_left(attempts=0, retry_base=0, max_retries=3)
    assert attempts_left(attempts=3, retry_base=0, max_retries=3)
    assert not attempts_left(attempts=4, retry_base=0, max_retries=3)
    assert attempts_left(attempts=4, retry_base=4, max_retries=0)
    assert not attempts_left(attempts=5, retry_base=4, max_retries=0)
