"""The scaling rule of dynamic concurrency limits, a pure function of the time."""

import pytest

from app.core.limits import DynamicLimit, LimitConfig, next_limit

SEEDS = LimitConfig(dynamic=DynamicLimit(initial=10, max=50, step=5, up_every_s=60, down_every_s=180))
NOW = 1_000_000_000
NEVER = 0


@pytest.mark.parametrize(
    ("current", "waiting", "last_up_ms", "last_down_ms", "expected"),
    [
        # grows only when the waiting tasks exceed twice the limit
        (10, 21, NEVER, NEVER, 15),
        (10, 20, NEVER, NEVER, None),
        (10, 10, NEVER, NEVER, None),
        # at most once per upEverySeconds
        (15, 100, NOW - 59_999, NEVER, None),
        (15, 100, NOW - 60_000, NEVER, 20),
        # never above max, by a partial step when needed
        (48, 200, NEVER, NEVER, 50),
        (50, 200, NEVER, NEVER, None),
        # shrinks only when the waiting tasks fall under half the limit
        (20, 9, NEVER, NEVER, 15),
        (20, 10, NEVER, NEVER, None),
        # at most once per downEverySeconds (a growth does not count)
        (20, 0, NEVER, NOW - 179_999, None),
        (20, 0, NOW, NOW - 180_000, 15),
        # never below initial
        (12, 0, NEVER, NEVER, 10),
        (10, 0, NEVER, NEVER, None),
        # a value outside the range (the config was replaced) is brought back at once
        (60, 0, NOW, NOW, 50),
        (5, 100, NOW, NOW, 10),
    ],
)
def test_the_scaling_rule(current, waiting, last_up_ms, last_down_ms, expected):
    change = next_limit(SEEDS, current, waiting, last_up_ms, last_down_ms, NOW)
    assert (change.to if change else None) == expected
    if change is not None and expected is not None:
        assert change.grew == (expected > current)
        assert change.reason


def test_a_static_limit_never_moves():
    assert next_limit(LimitConfig(max_concurrent=2), 2, 1000, NEVER, NEVER, NOW) is None


def test_a_limit_is_static_or_dynamic_never_both_nor_neither():
    with pytest.raises(ValueError):
        LimitConfig()
    with pytest.raises(ValueError):
        LimitConfig(max_concurrent=2, dynamic=SEEDS.dynamic)


def test_a_replaced_dynamic_limit_keeps_its_value_when_it_still_fits():
    assert SEEDS.clamp(30) == 30 and SEEDS.clamp(70) == 50 and SEEDS.clamp(3) == 10
    assert LimitConfig(max_concurrent=4).clamp(30) == 4
