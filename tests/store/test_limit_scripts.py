"""Concurrency limits in the load balancer's scripts, against fakeredis and a real Redis
(the ``redis`` fixture runs both); the race test on a real Redis only."""

import random
import threading

import pytest

from app.core.errors import LimitReached, LimitsNotLoaded
from app.core.limits import Limit, LimitConfig
from app.store import keys
from app.store.fleet import FleetStore, ServerProfile
from app.store.limit_state import LimitState

NOW = 1_700_000_000_000


def limit(limit_type, n):
    return Limit(limit_type, LimitConfig(max_concurrent=n), n, NOW, None, "created")


@pytest.fixture
def fleet(redis):
    fleet = FleetStore(redis, rng=random.Random(1))
    fleet.put_server(ServerProfile("s1", "online", 100, ("gpu",)), NOW)
    return fleet


@pytest.fixture
def limits(redis):
    state = LimitState(redis)
    state.publish([limit("llm", 2)], [], NOW)
    return state


def reserve(fleet, task_id, task_type="llm", attempt=1):
    return fleet.reserve(task_id, attempt, ("gpu",), now_ms=NOW, task_type=task_type)


def test_nothing_is_reserved_until_the_limits_are_loaded(fleet, redis):
    with pytest.raises(LimitsNotLoaded):
        reserve(fleet, "t1")
    assert redis.hlen(keys.pool_leases(fleet._pool_of("s1"))) == 0
    LimitState(redis).publish([], [], NOW)
    assert reserve(fleet, "t1") == "s1"


def test_a_full_limit_refuses_its_type_only_and_names_itself(fleet, limits):
    assert reserve(fleet, "a") == "s1" and reserve(fleet, "b") == "s1"
    with pytest.raises(LimitReached) as full:
        reserve(fleet, "c")
    assert full.value.limit_type == "llm"
    assert reserve(fleet, "other", task_type="ocr") == "s1"
    assert limits.live(["llm"])["llm"].in_flight == 2
    assert fleet.in_flight("s1") == 3


def test_the_limit_of_all_tasks_counts_every_type(fleet, limits):
    limits.put(limit("*", 3))
    assert reserve(fleet, "a") == "s1" and reserve(fleet, "b", "ocr") == "s1" and reserve(fleet, "c", "x")
    with pytest.raises(LimitReached) as full:
        reserve(fleet, "d", "ocr")
    assert full.value.limit_type == "*"
    assert limits.live(["*", "llm"])["llm"].in_flight == 1


def test_a_release_frees_the_holds_and_a_kept_slot_keeps_them(fleet, limits):
    reserve(fleet, "a")
    reserve(fleet, "b")
    assert fleet.release("s1", "a", 1, NOW, hold=True, task_type="llm") is False
    with pytest.raises(LimitReached):
        reserve(fleet, "c")
    assert fleet.release("s1", "b", 1, NOW, task_type="llm") is True
    assert limits.held("llm") == {"a:1": NOW}
    assert reserve(fleet, "c") == "s1"


def test_a_duplicate_reservation_counts_once(fleet, limits):
    assert reserve(fleet, "a") == "s1"
    assert reserve(fleet, "a") == "s1"
    assert reserve(fleet, "b") == "s1"
    assert limits.live(["llm"])["llm"].in_flight == 2


def test_a_restored_slot_restores_its_holds_and_stale_holds_are_swept(fleet, limits, redis):
    reserve(fleet, "a")
    redis.delete(keys.limit_held("llm"))  # as if lost
    fleet.restore_lease("s1", "a", 1, 1, NOW, "llm")
    assert limits.held("llm") == {"a:1": NOW}
    fleet.release("s1", "a", 1, NOW)  # no type given: its hold on llm stays behind
    assert limits.held("llm") == {"a:1": NOW}
    reserve(fleet, "b")
    live = [(t, a) for _, t, a in fleet.all_leases()]
    assert limits.sweep_holds(live, NOW) == 0  # not older than the cut-off
    assert limits.sweep_holds(live, NOW + 1) == 1
    assert limits.held("llm") == {"b:1": NOW}


def test_publishing_drops_removed_limits_and_adds_holds(limits, redis):
    limits.publish([limit("ocr", 1)], [("ocr", "t9", 2)], NOW)
    assert limits.types() == ["ocr"] and not redis.exists(keys.limit("llm"))
    assert limits.held("ocr") == {"t9:2": NOW}


def test_many_workers_reserving_at_once_never_exceed_a_limit(real_redis_client):
    client = real_redis_client
    FleetStore(client).put_server(ServerProfile("s1", "online", 1000, ("gpu",)), NOW)
    LimitState(client).publish([limit("llm", 7)], [], NOW)
    got: list[str] = []
    barrier = threading.Barrier(16)

    def worker(n: int) -> None:
        fleet = FleetStore(client, rng=random.Random(n))
        barrier.wait()
        for i in range(25):
            try:
                if fleet.reserve(f"w{n}-{i}", 1, ("gpu",), now_ms=NOW, task_type="llm"):
                    got.append(f"w{n}-{i}")
            except LimitReached:
                pass

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 7
    assert LimitState(client).live(["llm"])["llm"].in_flight == 7
