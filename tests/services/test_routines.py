"""The tick runs each maintenance routine once per window of its interval, however many
beats tick and workers run them; one routine failing or hanging does not stop the rest."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from app.core.clock import ManualClock
from app.core.errors import StoreUnavailable
from app.services.routines import run_due

#: A time at the start of a window of every interval below (a multiple of 60 s).
ALIGNED_MS = 1_700_000_040_000
EVERY_S = {"fast": 1.0, "mid": 5.0, "slow": 30.0}


@pytest.fixture
def clock(ctx):
    ctx.clock = ManualClock(ALIGNED_MS)
    return ctx.clock


def recording(calls: list[str], names=EVERY_S):
    return {name: (lambda _ctx, name=name: calls.append(name) or name) for name in names}


def test_the_first_tick_runs_every_routine_and_another_in_the_same_window_none(ctx, clock):
    calls: list[str] = []
    routines = recording(calls)
    assert run_due(ctx, routines, EVERY_S) == {"fast": "fast", "mid": "mid", "slow": "slow"}
    assert run_due(ctx, routines, EVERY_S) == {}
    clock.advance(0.999)
    assert run_due(ctx, routines, EVERY_S) == {}
    assert calls == ["fast", "mid", "slow"]  # shortest interval first


def test_a_routine_runs_again_once_its_interval_has_passed(ctx, clock):
    calls: list[str] = []
    routines = recording(calls)
    run_due(ctx, routines, EVERY_S)
    clock.advance(1)
    assert list(run_due(ctx, routines, EVERY_S)) == ["fast"]
    clock.advance(4)
    assert list(run_due(ctx, routines, EVERY_S)) == ["fast", "mid"]
    clock.advance(25)
    assert list(run_due(ctx, routines, EVERY_S)) == ["fast", "mid", "slow"]


def test_two_beats_and_two_workers_run_each_routine_once_per_interval(ctx, clock):
    """Two beats tick every second, 300 ms apart, each tick run by another worker (its
    own clock 40 ms off): a minute runs each routine exactly once per interval."""
    other = dataclasses.replace(ctx, clock=ManualClock(ALIGNED_MS + 40))
    calls: list[str] = []
    routines = recording(calls)
    for _ in range(60):
        run_due(ctx, routines, EVERY_S)
        other.clock.advance(0.3)  # type: ignore[attr-defined]
        run_due(other, routines, EVERY_S)
        other.clock.advance(0.7)  # type: ignore[attr-defined]
        clock.advance(1)
    assert {name: calls.count(name) for name in EVERY_S} == {"fast": 60, "mid": 12, "slow": 2}


def test_a_failing_routine_does_not_stop_the_others(ctx, clock, caplog):
    calls: list[str] = []

    def broken(_ctx):
        raise RuntimeError("bug")

    def unavailable(_ctx):
        raise StoreUnavailable("database unavailable")

    routines = {**recording(calls), "broken": broken, "unavailable": unavailable}
    every_s = {"broken": 1.0, "unavailable": 1.0, **EVERY_S}
    ran = run_due(ctx, routines, every_s)
    assert ran == {
        "broken": "failed",
        "unavailable": "unavailable",
        "fast": "fast",
        "mid": "mid",
        "slow": "slow",
    }
    assert "routine broken failed" in caplog.text and "RuntimeError: bug" in caplog.text
    assert "routine unavailable: database unavailable" in caplog.text


def test_a_slow_routine_holds_back_the_others_only_until_the_next_tick(ctx, clock):
    """A tick stuck in a routine has not claimed the ones after it yet: the next tick
    (another greenlet in the worker) runs them, and the stuck tick then skips them."""
    release, stuck = threading.Event(), threading.Event()
    calls: list[str] = []

    def first(_ctx):
        calls.append("first")
        if len(calls) == 1:
            stuck.set()
            assert release.wait(10)
        return "first"

    routines = {"first": first, "later": lambda _ctx: calls.append("later") or "later"}
    every_s = {"first": 1.0, "later": 5.0}
    results: list[dict[str, object]] = []
    stuck_tick = threading.Thread(target=lambda: results.append(run_due(ctx, routines, every_s)))
    stuck_tick.start()
    assert stuck.wait(10)
    clock.advance(1)
    assert run_due(ctx, routines, every_s) == {"first": "first", "later": "later"}
    release.set()
    stuck_tick.join(10)
    assert results == [{"first": "first"}]
    assert calls == ["first", "first", "later"]


def test_without_redis_no_routine_runs(ctx, clock, monkeypatch, caplog):
    def down(*_args):
        raise StoreUnavailable("redis unavailable")

    monkeypatch.setattr(ctx.routine_claims, "claim", down)
    calls: list[str] = []
    assert run_due(ctx, recording(calls), EVERY_S) == {}
    assert calls == [] and "no routine claimed" in caplog.text


def test_a_claim_outlives_its_window_and_no_longer(ctx, clock):
    assert ctx.routine_claims.claim("mid", 5000, ALIGNED_MS + 4999)
    (key,) = ctx.redis.keys("tf:tick:mid:*")
    assert 4000 < ctx.redis.pttl(key) <= 5000
