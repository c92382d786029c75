"""Callback-URL tokens across processes whose clocks differ: a worker mints them, the API
checks them, and ``CLOCK_LEEWAY_S`` of difference is forgiven."""

from __future__ import annotations

import pytest

from app.backends import CallbackTokens
from app.core.clock import ManualClock
from app.core.errors import Forbidden, Unauthorized

SECRET = b"callback-secret"
LEEWAY_S = 30
MAX_AGE_S = 3600


def minted_ahead(ahead_s: float) -> tuple[str, CallbackTokens]:
    """A token minted by a worker whose clock is ``ahead_s`` ahead of the API's, and the
    API's checker."""
    api_clock = ManualClock()
    worker_clock = ManualClock(api_clock.now_ms() + int(ahead_s * 1000))
    token = CallbackTokens(SECRET, worker_clock, LEEWAY_S).issue("t1", 1)
    return token, CallbackTokens(SECRET, api_clock, LEEWAY_S)


@pytest.mark.parametrize("ahead_s", [1, 2, 20, LEEWAY_S])
def test_a_token_from_a_worker_whose_clock_is_ahead_within_the_leeway_is_accepted(ahead_s):
    token, api = minted_ahead(ahead_s)
    claim = api.verify(token, "t1", MAX_AGE_S)
    assert claim.attempt == 1


@pytest.mark.parametrize("ahead_s", [LEEWAY_S + 1, 60, 3600])
def test_a_token_stamped_further_in_the_future_than_the_leeway_is_401(ahead_s):
    token, api = minted_ahead(ahead_s)
    with pytest.raises(Unauthorized, match="in the future"):
        api.verify(token, "t1", MAX_AGE_S)


def test_without_leeway_a_token_from_a_clock_two_seconds_ahead_is_refused():
    api_clock = ManualClock()
    token = CallbackTokens(SECRET, ManualClock(api_clock.now_ms() + 2000)).issue("t1", 1)
    with pytest.raises(Unauthorized):
        CallbackTokens(SECRET, api_clock).verify(token, "t1", MAX_AGE_S)


def test_expiry_forgery_and_another_tasks_token_are_still_refused():
    clock = ManualClock()
    tokens = CallbackTokens(SECRET, clock, LEEWAY_S)
    token = tokens.issue("t1", 2)
    clock.advance(MAX_AGE_S)
    assert tokens.verify(token, "t1", MAX_AGE_S).attempt == 2
    with pytest.raises(Forbidden):
        tokens.verify(token, "t2", MAX_AGE_S)
    clock.advance(1)
    with pytest.raises(Unauthorized, match="expired"):
        tokens.verify(token, "t1", MAX_AGE_S)
    with pytest.raises(Unauthorized, match="invalid"):
        tokens.verify(token[:-2] + "xx", "t1", MAX_AGE_S)
    with pytest.raises(Unauthorized, match="invalid"):
        CallbackTokens(b"other-secret", clock, LEEWAY_S).verify(token, "t1", MAX_AGE_S)
