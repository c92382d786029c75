from app.core.balancing import seed_weight
from app.core.server_health import (
    INTERVAL_MAX_S,
    INTERVAL_MIN_S,
    INTERVAL_START_S,
    Health,
    ServerStatus,
    after_check,
    is_expired,
    is_silent,
)

ON, DEG, OFF = ServerStatus.ONLINE, ServerStatus.DEGRADED, ServerStatus.OFFLINE


def run(outcomes, health=None):
    health = health or Health()
    trail = []
    for ok in outcomes:
        health = after_check(health, ok)
        trail.append(health)
    return trail


def test_one_failure_degrades_three_in_a_row_take_it_offline():
    assert [h.status for h in run([False, False, False])] == [DEG, DEG, OFF]


def test_three_successes_in_a_row_bring_it_back_online():
    trail = run([False, False, False, True, True, False, True, True, True])
    assert [h.status for h in trail] == [DEG, DEG, OFF, OFF, OFF, DEG, DEG, DEG, ON]


def test_the_interval_grows_after_success_and_shrinks_after_failure_within_bounds():
    trail = run([True] * 30)
    assert trail[0].interval_s == INTERVAL_START_S * 1.2
    assert trail[-1].interval_s == INTERVAL_MAX_S
    trail = run([False] * 10, trail[-1])
    assert trail[0].interval_s == INTERVAL_MAX_S / 1.5
    assert trail[-1].interval_s == INTERVAL_MIN_S


def test_the_score_moves_plus_five_minus_ten_within_zero_and_hundred():
    trail = run([False] * 12)
    assert [h.score for h in trail[:3]] == [90, 80, 70] and trail[-1].score == 0
    trail = run([True] * 25, trail[-1])
    assert trail[0].score == 5 and trail[-1].score == 100


def test_a_draining_server_stays_draining():
    draining = Health(status=ServerStatus.DRAINING)
    assert {h.status for h in run([False, False, False, True, True, True], draining)} == {
        ServerStatus.DRAINING
    }


def test_silence_and_removal_grace_are_measured_on_the_injected_clock():
    assert not is_silent(last_seen_ms=0, now_ms=299_999)
    assert is_silent(last_seen_ms=0, now_ms=300_000)
    assert not is_expired(offline_since_ms=0, now_ms=59_999, grace_s=60)
    assert is_expired(offline_since_ms=0, now_ms=60_000, grace_s=60)


def test_the_seed_weight_formula():
    assert seed_weight(None, None) == 1
    assert seed_weight(1.0, 0) == 10
    assert seed_weight(1.0, 4000) == 8  # (10 + 6) / 2
    assert seed_weight(0.5, 10_000) == 2  # round((5 + 0) / 2) = round(2.5) -> 2 (banker's)
    assert seed_weight(0.0, 20_000) == 1
