import random

from app.core.backoff import MAX_BACKOFF_S, backoff_s


def test_backoff_doubles_with_jitter_between_half_and_full():
    rng = random.Random(7)
    for failures in range(1, 8):
        delay = backoff_s(failures, rng)
        assert 2**failures * 0.5 <= delay <= 2**failures


def test_backoff_is_capped_at_five_minutes():
    rng = random.Random(1)
    assert all(backoff_s(n, rng) <= MAX_BACKOFF_S for n in range(8, 40))
    assert max(backoff_s(30, rng) for _ in range(200)) > MAX_BACKOFF_S * 0.9
