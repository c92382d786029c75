"""Selection, slots, metrics and the breaker in Lua, on fakeredis and a real Redis."""

import random
from collections import Counter

import pytest

from app.core.balancing import CIRCUIT_FAILURES, CIRCUIT_OPEN_S, Algorithm, resource_score
from app.core.states import TaskStatus
from app.core.task import TaskSpec, TaskState
from app.store import keys
from app.store.fleet import FleetStore, ServerProfile
from app.store.hot_state import TaskStateStore
from app.store.limit_state import LimitState

NOW = 1_000_000


@pytest.fixture
def fleet(redis):
    LimitState(redis).publish([], [], 0)  # no concurrency limits, published
    return FleetStore(redis, rng=random.Random(42))


def add(
    fleet,
    sid,
    max_concurrent=3,
    caps=("gpu",),
    groups=(),
    region=None,
    weight=1.0,
    status="online",
    priority=0,
):
    profile = ServerProfile(
        sid, status, max_concurrent, tuple(caps), tuple(groups), region, weight, priority=priority
    )
    fleet.put_server(profile, NOW)


def picks(fleet, n, caps=("gpu",), release=True, **kw):
    got = []
    for i in range(n):
        sid = fleet.reserve(f"t{i}", 1, caps, **kw)
        got.append(sid)
        if release and sid:
            fleet.release(sid, f"t{i}", 1, NOW, "none")
    return got


def test_reserve_never_exceeds_capacity_and_release_frees_each_slot_once(fleet):
    add(fleet, "a", 2)
    add(fleet, "b", 2)
    got = picks(fleet, 6, release=False)
    assert Counter(got) == {"a": 2, "b": 2, None: 2}
    assert fleet.release("a", "t0", 1, NOW) or fleet.release("a", "t1", 1, NOW)
    assert fleet.in_flight("a") == 1
    for i in range(6):
        for sid in ("a", "b"):
            fleet.release(sid, f"t{i}", 1, NOW)
            assert fleet.release(sid, f"t{i}", 1, NOW) is False
    assert fleet.in_flight("a") == fleet.in_flight("b") == 0
    assert fleet.free_slots() == 4


def test_a_lease_in_use_by_the_running_attempt_is_not_released(fleet, redis):
    add(fleet, "a", 2)
    store = TaskStateStore(redis, 300)
    store.put_if_absent(TaskState("t1", "o", TaskSpec("x"), TaskStatus.PENDING, 1, 1, 1))
    sid = fleet.reserve("t1", 1)
    store.transition("t1", [TaskStatus.PENDING], TaskStatus.PROCESSING, 2, 0, attempt=1, server_id=sid)
    assert fleet.release(sid, "t1", 1, NOW) is False  # a dispatcher that lost the race
    assert fleet.in_flight(sid) == 1
    store.transition("t1", [TaskStatus.PROCESSING], TaskStatus.COMPLETED, 3)
    assert fleet.release(sid, "t1", 1, NOW, "success", 50) is True
    assert fleet.in_flight(sid) == 0


def test_capability_group_region_and_maintenance_filters_hold(fleet):
    add(fleet, "gpu-eu", caps=("gpu", "llm"), groups=("prod",), region="eu")
    add(fleet, "gpu-us", caps=("gpu",), groups=("prod",), region="us")
    add(fleet, "cpu-eu", caps=("cpu",), region="eu")
    assert set(picks(fleet, 40, ("gpu", "llm"))) == {"gpu-eu"}
    assert set(picks(fleet, 40, ("video",))) == {None}
    assert set(picks(fleet, 40, ("gpu",), group="prod")) == {"gpu-eu", "gpu-us"}
    assert set(picks(fleet, 40, (), group="staging")) == {None}
    assert set(picks(fleet, 40, ("gpu",), region="us")) == {"gpu-us"}
    fleet.update("gpu-us", NOW, maintenance="1")
    assert set(picks(fleet, 40, ("gpu",), region="us")) == {"gpu-eu"}  # falls back to any region
    fleet.update("gpu-us", NOW, maintenance="0")
    fleet.update("gpu-eu", NOW, status="offline")
    assert set(picks(fleet, 40, ("gpu",))) == {"gpu-us"}


def test_region_prefers_its_servers_until_they_are_full(fleet):
    add(fleet, "eu", 2, region="eu")
    add(fleet, "us", 2, region="us")
    assert picks(fleet, 4, region="eu", release=False) == ["eu", "eu", "us", "us"]


@pytest.mark.parametrize("weights", [(1, 2, 5), (3, 3, 1)])
def test_smooth_weighted_round_robin_follows_the_weights_closely(fleet, weights):
    for i, w in enumerate(weights):
        add(fleet, f"s{i}", 100, weight=w)
    fleet.set_algorithm(Algorithm.WEIGHTED_ROUND_ROBIN, NOW)
    counts = Counter(picks(fleet, 800))
    total = sum(weights)
    for i, w in enumerate(weights):
        assert abs(counts[f"s{i}"] / 800 - w / total) < 0.02
    window = picks(fleet, total)  # smooth: every server appears within one cycle
    assert Counter(window) == {f"s{i}": w for i, w in enumerate(weights)}


def test_round_robin_takes_turns(fleet):
    for sid in ("a", "b", "c"):
        add(fleet, sid, 100)
    fleet.set_algorithm(Algorithm.ROUND_ROBIN, NOW)
    got = picks(fleet, 9)
    assert Counter(got) == {"a": 3, "b": 3, "c": 3}
    assert len(set(got[:3])) == 3


def test_random_is_weighted_and_covers_every_server(fleet):
    add(fleet, "light", 100, weight=1)
    add(fleet, "heavy", 100, weight=3)
    fleet.set_algorithm(Algorithm.RANDOM, NOW)
    counts = Counter(picks(fleet, 2000))
    assert 0.70 < counts["heavy"] / 2000 < 0.80


def simulate_latency(fleet, algorithm, n=600):
    """Two servers, one slow: hold tasks as if in flight, finishing by latency."""
    add(fleet, "fast", 50)
    add(fleet, "slow", 50)
    fleet.set_algorithm(algorithm, NOW)
    latency = {"fast": 20, "slow": 200}
    running, counts, now = [], Counter(), NOW
    for i in range(n):
        now += 10
        for item in list(running):
            end, sid, tid = item
            if end <= now:
                fleet.release(sid, tid, 1, now, "success", latency[sid])
                running.remove(item)
        sid = fleet.reserve(f"t{i}", 1, ("gpu",))
        if sid:
            counts[sid] += 1
            running.append((now + latency[sid], sid, f"t{i}"))
    return counts


@pytest.mark.parametrize(
    "algorithm", [Algorithm.LEAST_CONNECTIONS, Algorithm.P2C_EWMA, Algorithm.RESPONSE_TIME]
)
def test_latency_aware_algorithms_send_less_to_a_slow_server(fleet, algorithm):
    counts = simulate_latency(fleet, algorithm)
    assert counts["slow"] < counts["fast"] * 0.5, counts


def test_least_connections_picks_the_emptiest_server(fleet):
    add(fleet, "a", 10)
    add(fleet, "b", 10)
    fleet.set_algorithm(Algorithm.LEAST_CONNECTIONS, NOW)
    got = picks(fleet, 10, release=False)
    assert Counter(got) == {"a": 5, "b": 5}


def test_degraded_servers_get_less(fleet):
    add(fleet, "ok", 100)
    add(fleet, "sick", 100)
    fleet.update("sick", NOW, status="degraded")
    counts = Counter(picks(fleet, 300))
    assert counts["sick"] < counts["ok"] * 0.7


def test_the_avoided_server_is_skipped_when_another_fits(fleet):
    add(fleet, "a", 5)
    add(fleet, "b", 5)
    assert set(picks(fleet, 30, avoid="a")) == {"b"}
    fleet.update("b", NOW, maintenance="1")
    assert set(picks(fleet, 5, avoid="a")) == {"a"}


def test_a_slot_cost_above_one_needs_that_much_room(fleet):
    add(fleet, "a", 3)
    assert fleet.reserve("big", 1, ("gpu",), cost=2) == "a"
    assert fleet.reserve("big2", 1, ("gpu",), cost=2) is None
    assert fleet.reserve("small", 1, ("gpu",), cost=1) == "a"
    assert fleet.in_flight("a") == 3


def test_metrics_count_each_finished_attempt_once(fleet):
    add(fleet, "a", 5)
    for i, (outcome, ms) in enumerate([("success", 100), ("success", 300), ("failure", 50)]):
        fleet.reserve(f"t{i}", 1)
        fleet.release("a", f"t{i}", 1, NOW + i, outcome, ms)
        fleet.release("a", f"t{i}", 1, NOW + i, outcome, ms)
    state = fleet.state("a")
    assert (state.processed, state.successes, state.failures) == (3, 2, 1)
    assert state.resp_total_ms == 450 and state.last_active_ms == NOW + 2


def test_five_failures_open_the_circuit_then_one_probe_closes_it(fleet):
    add(fleet, "a", 5)
    for i in range(CIRCUIT_FAILURES):
        assert fleet.reserve(f"t{i}", 1) == "a"
        fleet.release("a", f"t{i}", 1, NOW, "failure", 10)
    assert fleet.state("a").circuit == "open"
    assert fleet.reserve("x", 1) is None
    assert fleet.due_wake_ups(NOW + CIRCUIT_OPEN_S * 1000 - 1, 10) == []
    assert fleet.due_wake_ups(NOW + CIRCUIT_OPEN_S * 1000, 10) == ["a"]
    assert fleet.sync("a", NOW + CIRCUIT_OPEN_S * 1000)
    assert fleet.state("a").circuit == "half_open"
    assert fleet.reserve("probe", 1) == "a"
    assert fleet.reserve("second", 1) is None  # one probe at a time
    fleet.release("a", "probe", 1, NOW, "success", 10)
    assert fleet.state("a").circuit == "closed"
    assert picks(fleet, 3) == ["a", "a", "a"]


def test_a_failed_probe_opens_the_circuit_again(fleet):
    add(fleet, "a", 5)
    for i in range(CIRCUIT_FAILURES):
        fleet.reserve(f"t{i}", 1)
        fleet.release("a", f"t{i}", 1, NOW, "failure", 10)
    later = NOW + CIRCUIT_OPEN_S * 1000
    fleet.sync("a", later)
    fleet.reserve("probe", 1)
    fleet.release("a", "probe", 1, later, "failure", 10)
    assert fleet.state("a").circuit == "open"
    assert fleet.state("a").circuit_until_ms == later + CIRCUIT_OPEN_S * 1000


def test_a_busy_server_is_skipped_until_retry_after(fleet):
    add(fleet, "a", 5)
    fleet.reserve("t", 1)
    fleet.release("a", "t", 1, NOW, "busy", busy_for_s=2)
    assert fleet.reserve("u", 1) is None
    assert fleet.due_wake_ups(NOW + 1999, 10) == []
    assert fleet.due_wake_ups(NOW + 2000, 10) == ["a"]
    assert fleet.sync("a", NOW + 2000) and fleet.reserve("u", 1) == "a"
    assert fleet.state("a").failures == 0  # busy is not a failure


def test_re_registering_with_new_capabilities_keeps_in_flight_slots(fleet):
    add(fleet, "a", 2, caps=("gpu",))
    assert fleet.reserve("t1", 1, ("gpu",)) == "a"
    add(fleet, "a", 2, caps=("gpu", "llm"))
    assert fleet.in_flight("a") == 1
    assert fleet.reserve("t2", 1, ("llm",)) == "a"
    assert fleet.reserve("t3", 1, ("gpu",)) is None
    assert fleet.release("a", "t1", 1, NOW) and fleet.in_flight("a") == 1


def test_switching_algorithms_rescores_and_keeps_selecting(fleet):
    for sid in ("a", "b"):
        add(fleet, sid, 10)
    for algorithm in Algorithm:
        fleet.set_algorithm(algorithm, NOW)
        assert fleet.algorithm() is algorithm
        assert set(picks(fleet, 20)) == {"a", "b"}


def test_a_removed_server_is_never_chosen(fleet):
    add(fleet, "a", 2)
    add(fleet, "b", 2)
    fleet.remove_server("a")
    assert set(picks(fleet, 10)) == {"b"}
    assert fleet.server_ids() == ["b"]


def test_a_gpu_figure_stored_before_heartbeats_checked_it_reads_as_not_reported(fleet, redis):
    add(fleet, "a")
    redis.hset(keys.server("a"), mapping={"reported_gpu_utilization": "high", "reported_in_flight": "2"})
    state = fleet.state("a")
    assert state.reported_gpu_utilization is None and state.reported_in_flight == 2


@pytest.mark.parametrize(
    "algorithm",
    [
        Algorithm.LEAST_CONNECTIONS,
        Algorithm.RESPONSE_TIME,
        Algorithm.ROUND_ROBIN,
        Algorithm.WEIGHTED_ROUND_ROBIN,
    ],
)
def test_priority_breaks_ties_even_behind_many_equal_servers(fleet, algorithm):
    fleet.set_algorithm(algorithm, NOW)
    for i in range(12):  # more equal servers than selection reads from the front of a pool
        add(fleet, f"s{i:02}", 10)
    add(fleet, "z-high", 10, priority=60)
    add(fleet, "z-low", 10, caps=("gpu", "llm"), priority=30)  # another pool
    assert picks(fleet, 1) == ["z-high"]
    assert fleet.state("z-high").priority == 60


def test_priority_orders_only_equal_scores(fleet):
    fleet.set_algorithm(Algorithm.LEAST_CONNECTIONS, NOW)
    add(fleet, "a", 10)
    add(fleet, "b", 10, priority=100)
    assert picks(fleet, 3) == ["b", "b", "b"]  # released each time: still the best
    assert picks(fleet, 4, release=False) == ["b", "a", "b", "a"]  # load first, then priority


def test_priority_leads_each_weighted_round_robin_round_and_keeps_the_shares(fleet):
    add(fleet, "a", 100)
    add(fleet, "b", 100, priority=1)
    fleet.set_algorithm(Algorithm.WEIGHTED_ROUND_ROBIN, NOW)
    assert picks(fleet, 6) == ["b", "a"] * 3
    add(fleet, "c", 100, weight=2)
    assert Counter(picks(fleet, 400)) == {"a": 100, "b": 100, "c": 200}


def report(fleet, sid, at_ms, **figures):
    """A heartbeat's figures (ServerRecord.REPORTED names), as the heartbeat service
    stores and publishes them."""
    fleet.touch(sid, at_ms, figures)
    fleet.sync(sid, at_ms)


def pick_at(fleet, now_ms, n=1, caps=("gpu",)):
    """``n`` selections at ``now_ms``, each released at once."""
    got = []
    for i in range(n):
        sid = fleet.reserve(f"r{now_ms}-{i}", 1, caps, now_ms=now_ms)
        got.append(sid)
        if sid:
            fleet.release(sid, f"r{now_ms}-{i}", 1, now_ms, "none")
    return got


@pytest.fixture
def aware(fleet):
    fleet.set_algorithm(Algorithm.RESOURCE_AWARE, NOW)
    return fleet


def test_resource_aware_picks_the_least_loaded_server(aware):
    for sid in ("busy", "idle", "quiet"):
        add(aware, sid, 10)
    report(aware, "busy", NOW, cpu=0.9, memory=0.9)
    report(aware, "idle", NOW, cpu=0.2, memory=0.3)
    # "quiet" reports nothing: 0.5 and 0.5, below "idle" whatever its slots in use
    assert picks(aware, 5, release=False, now_ms=NOW) == ["idle"] * 5


def test_resource_aware_spreads_equal_servers_by_slots_in_use(aware):
    for sid in ("a", "b"):
        add(aware, sid, 10)
        report(aware, sid, NOW, cpu=0.5, memory=0.5)
    assert Counter(picks(aware, 6, release=False, now_ms=NOW)) == {"a": 3, "b": 3}


def test_resource_aware_scores_are_the_core_rule(aware, redis):
    add(aware, "a", 10, priority=100)  # no priority term: the score is the rule itself
    add(aware, "b", 10, priority=100)
    add(aware, "c", 10, priority=100)
    report(aware, "a", NOW, cpu=0.3, memory=0.6)
    report(aware, "b", NOW, cpu=0.1, memory=0.2, gpu_utilization=0.7, gpu_memory=0.4)
    aware.update("c", NOW, status="degraded")
    assert aware.reserve("t1", 1, now_ms=NOW) == "a"  # 0.64, b 0.56, c 0.3
    avail = keys.pool_avail(ServerProfile("a", "online", 10, ("gpu",)).pool_id)
    assert redis.zscore(avail, "a") == pytest.approx(-resource_score(0.3, 0.6, 1), abs=1e-12)
    assert redis.zscore(avail, "b") == pytest.approx(-resource_score(0.7, 0.4, 0), abs=1e-12)
    assert redis.zscore(avail, "c") == pytest.approx(-resource_score(None, None, 0, degraded=True), abs=1e-12)


def test_gpu_figures_stand_in_for_cpu_and_memory(aware):
    add(aware, "gpu-busy", 10)
    add(aware, "cpu-busy", 10)
    report(aware, "gpu-busy", NOW, cpu=0.1, memory=0.1, gpu_utilization=0.95, gpu_memory=0.9)
    report(aware, "cpu-busy", NOW, cpu=0.8, memory=0.8)
    assert pick_at(aware, NOW, 3) == ["cpu-busy"] * 3
    report(aware, "gpu-busy", NOW, cpu=0.1, memory=0.1)  # no GPU figures this time
    assert pick_at(aware, NOW, 3) == ["gpu-busy"] * 3


def test_stale_figures_count_as_unknown_as_time_passes_without_a_heartbeat(aware):
    add(aware, "a", 10)
    add(aware, "b", 10)
    report(aware, "b", NOW, cpu=0.9, memory=0.9)  # bad, and goes stale first
    report(aware, "a", NOW + 30_000, cpu=0.6, memory=0.6)
    assert pick_at(aware, NOW + 60_000, 3) == ["a"] * 3  # 60 s old still counts
    assert pick_at(aware, NOW + 60_001, 3) == ["b"] * 3  # unknown: 0.5 each beats 0.6
    report(aware, "b", NOW + 70_000, cpu=0.9, memory=0.9)
    assert pick_at(aware, NOW + 70_000, 3) == ["a"] * 3
    assert pick_at(aware, NOW + 90_001, 3) == ["a"] * 3  # a unknown (0.6), b fresh (0.28)
    assert pick_at(aware, NOW + 130_001, 6).count("b") > 0  # both unknown: equal


def test_a_stale_good_figure_leaves_the_front(aware):
    add(aware, "a", 10)
    add(aware, "b", 10)
    report(aware, "b", NOW, cpu=0.1, memory=0.1)
    report(aware, "a", NOW + 30_000, cpu=0.4, memory=0.4)
    assert pick_at(aware, NOW + 59_000, 3) == ["b"] * 3
    assert pick_at(aware, NOW + 61_000, 3) == ["a"] * 3
    assert aware.reserve("held", 1, avoid="a", now_ms=NOW + 61_000) == "b"
    aware.release("b", "held", 1, NOW)  # a process whose clock is behind re-scores b as fresh ...
    assert pick_at(aware, NOW + 61_000, 3) == ["a"] * 3  # ... and the next pick corrects it


def test_switching_to_resource_aware_scores_figures_at_that_time(fleet):
    add(fleet, "a", 10)
    add(fleet, "b", 10)
    report(fleet, "b", NOW, cpu=0.1, memory=0.1)
    report(fleet, "a", NOW, cpu=0.4, memory=0.4)
    fleet.set_algorithm(Algorithm.RESOURCE_AWARE, NOW + 10_000)
    assert pick_at(fleet, NOW + 10_000) == ["b"]
    fleet.set_algorithm(Algorithm.LEAST_CONNECTIONS, NOW + 20_000)
    report(fleet, "a", NOW + 30_000, cpu=0.4, memory=0.4)
    fleet.set_algorithm(Algorithm.RESOURCE_AWARE, NOW + 61_000)  # b's are stale by now
    assert pick_at(fleet, NOW + 61_000) == ["a"]


def test_a_removed_or_moved_server_leaves_the_fresh_set(aware, redis):
    add(aware, "a", 10)
    report(aware, "a", NOW, cpu=0.1, memory=0.1)
    pool = ServerProfile("a", "online", 10, ("gpu",)).pool_id
    assert redis.zscore(keys.pool_fresh(pool), "a") == NOW + 60_000
    add(aware, "a", 10, caps=("gpu", "llm"))
    assert redis.zscore(keys.pool_fresh(pool), "a") is None
    moved = ServerProfile("a", "online", 10, ("gpu", "llm")).pool_id
    assert redis.zscore(keys.pool_fresh(moved), "a") == NOW + 60_000
    aware.remove_server("a")
    assert redis.zcard(keys.pool_fresh(moved)) == 0
