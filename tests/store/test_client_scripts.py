"""Per-client admission scripts (client_*.lua) against fakeredis and a real Redis (the
``redis`` fixture runs both): the token bucket, the unfinished count, recounts."""

import pytest

from app.core.client_limits import ClientLimits
from app.store import keys
from app.store.client_state import Admit, ClientState

NOW = 1_700_000_000_000
LIMITS = ClientLimits(submits_per_s=10.0, burst=20, max_unfinished=50)
COUNTED = (0, 0)  # (database count, mark) as a first recount gives for a new client


@pytest.fixture
def state(redis):
    return ClientState(redis)


def admit(state, count, now=NOW, limits=LIMITS, admission="a", own=COUNTED):
    return state.admit("alice", limits, count, admission, now, own)


def test_a_new_bucket_is_full_and_a_burst_empties_it(state):
    assert admit(state, 15) == (Admit.ADMITTED, 5)
    assert admit(state, 5, admission="b") == (Admit.ADMITTED, 0)
    code, wait_ms = admit(state, 1, admission="c")
    assert (code, wait_ms) == (Admit.TOO_FAST, 100)  # 1 token at 10 per second


def test_the_bucket_refills_at_its_rate_up_to_the_burst(state):
    admit(state, 20)
    code, wait_ms = admit(state, 5, now=NOW + 250, admission="b")  # 2.5 tokens back
    assert (code, wait_ms) == (Admit.TOO_FAST, 250)  # 2.5 more at 10 per second
    assert admit(state, 5, now=NOW + 500, admission="c") == (Admit.ADMITTED, 0)
    # An hour idle: full again, never more than the burst.
    assert admit(state, 20, now=NOW + 3_600_000, admission="d") == (Admit.ADMITTED, 0)


def test_a_refusal_writes_nothing(state, redis):
    admit(state, 20)
    before = redis.hgetall(keys.client_usage("alice")), redis.zrange(keys.client_admissions("alice"), 0, -1)
    assert admit(state, 3, admission="b")[0] is Admit.TOO_FAST
    after = redis.hgetall(keys.client_usage("alice")), redis.zrange(keys.client_admissions("alice"), 0, -1)
    assert before == after


def test_the_wait_is_rounded_up_to_whole_milliseconds(state):
    slow = ClientLimits(submits_per_s=3.0, burst=1, max_unfinished=50)
    admit(state, 1, limits=slow)
    assert admit(state, 1, limits=slow, admission="b") == (Admit.TOO_FAST, 334)


def test_without_a_count_nothing_is_admitted_until_the_caller_counts(state):
    assert state.admit("alice", LIMITS, 1, "a", NOW) == (Admit.NOT_COUNTED, 0)
    assert state.admit("alice", LIMITS, 1, "a", NOW, (49, 0)) == (Admit.ADMITTED, 19)
    assert state.usage("alice", LIMITS, NOW).unfinished_counted is None  # not installed


def test_the_cap_counts_the_base_what_settled_since_and_what_is_in_flight(state):
    generation, mark = state.begin_count("alice", LIMITS, NOW, 10_000, 1000, forced=True)
    assert generation == 1 and mark == 0
    assert state.end_count("alice", LIMITS, generation, 30, mark, NOW, NOW - 60_000)
    assert state.admit("alice", LIMITS, 10, "a", NOW) == (Admit.ADMITTED, 10)  # 30 + 10 in flight
    state.settle("alice", "a", 10, stored=True)  # 30 + 10 settled
    assert state.admit("alice", LIMITS, 10, "b", NOW) == (Admit.ADMITTED, 0)  # 50
    assert state.admit("alice", LIMITS, 1, "c", NOW + 1000) == (Admit.FULL, 50)
    state.settle("alice", "b", 10, stored=False)  # refused after admission: room again
    assert state.usage("alice", LIMITS, NOW + 1000).unfinished_counted == 40
    assert state.admit("alice", LIMITS, 10, "d", NOW + 1000) == (Admit.ADMITTED, 0)


def test_a_recount_keeps_what_settled_after_it_began_and_drops_stale_admissions(state):
    generation, mark = state.begin_count("alice", LIMITS, NOW, 10_000, 1000, forced=True)
    state.end_count("alice", LIMITS, generation, 0, mark, NOW, NOW - 60_000)
    state.admit("alice", LIMITS, 5, "early", NOW)
    state.settle("alice", "early", 5, stored=True)
    state.admit("alice", LIMITS, 4, "lost", NOW)  # its process dies: never settled
    generation, mark = state.begin_count("alice", LIMITS, NOW + 61_000, 10_000, 1000, forced=False)
    assert (generation, mark) == (2, 5)
    state.admit("alice", LIMITS, 3, "late", NOW + 61_000)
    state.settle("alice", "late", 3, stored=True)  # stored after the count below began
    # The count saw the 5 stored before it began (and the 3, or not: counted once more).
    assert state.end_count("alice", LIMITS, generation, 5, mark, NOW + 61_000, NOW + 1000)
    # 5 (base) + 3 (settled after the mark); the lost admission of 4 is dropped.
    assert state.usage("alice", LIMITS, NOW + 61_000).unfinished_counted == 8


def test_one_recount_at_a_time_and_an_unforced_one_at_most_every_interval(state):
    first, _ = state.begin_count("alice", LIMITS, NOW, 10_000, 1000, forced=True)
    assert first == 1
    assert state.begin_count("alice", LIMITS, NOW + 1, 10_000, 1000, forced=True)[0] == 0  # held
    state.end_count("alice", LIMITS, first, 0, 0, NOW + 5, NOW - 60_000)
    assert state.begin_count("alice", LIMITS, NOW + 500, 10_000, 1000, forced=False)[0] == 0
    second, _ = state.begin_count("alice", LIMITS, NOW + 1000, 10_000, 1000, forced=False)
    assert second == 2
    # Its lease runs out: a later recount supersedes it and its count is not installed.
    third, _ = state.begin_count("alice", LIMITS, NOW + 11_001, 10_000, 1000, forced=True)
    assert third == 3
    assert not state.end_count("alice", LIMITS, second, 7, 0, NOW + 12_000, NOW)
    assert state.end_count("alice", LIMITS, third, 9, 0, NOW + 12_000, NOW)
    assert state.usage("alice", LIMITS, NOW + 12_000).unfinished_counted == 9


def test_the_keys_expire_when_the_client_is_idle(state, redis):
    admit(state, 1)
    assert 3_500_000 < redis.pttl(keys.client_usage("alice")) <= 3_600_000
    assert redis.pttl(keys.client_admissions("alice")) > 3_500_000


def test_weights_are_published_and_replaced(state, redis):
    state.put_weight("alice", 3)
    state.put_weight("bob@example.com/x", 2)
    state.put_weight("alice", None)
    assert redis.hgetall(keys.CLIENT_WEIGHTS) == {"bob@example.com/x": "2"}
    state.publish_weights({"carol": 5})
    assert state.weights() == {"carol": 5}
    state.publish_weights({})
    assert state.weights() == {}
