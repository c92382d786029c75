"""The waiting lines' scripts (park, pop, unpark, admit), against fakeredis and a real
Redis (the ``redis`` fixture runs both): fair order, weights, no burst credit, global
order without fair sharing, profiles forgotten when their line empties, the cap."""

from __future__ import annotations

import pytest

from app.core.task import front_of_line_score, waiting_score
from app.store import keys
from app.store.waiting_lines import EVERYONE, Entry, WaitingLines, member, profile_id

POOL = "pool1"


@pytest.fixture
def lines(redis):
    return WaitingLines(redis)


def entry(task_id: str, client: str, priority: int = 5, created_ms: int = 1000, caps=("gpu",), group=None):
    return Entry(
        task_id=task_id,
        capabilities=caps,
        group=group,
        client=client,
        score=waiting_score(priority, created_ms),
        other=front_of_line_score(priority),
    )


def park(lines, entries, pools=(POOL,)):
    for e in entries:
        lines.park(e, list(pools))


def drain(lines, pool=POOL, fair=True, limit=10_000):
    order = []
    while len(order) < limit:
        taken = lines.take(pool, 1, fair)
        if not taken:
            break
        order += taken
    return order


def test_a_member_sorts_by_client_then_priority_then_age():
    assert member("ab", waiting_score(10, 5), "t1") < member("ab", waiting_score(9, 1), "t0")
    assert member("ab", waiting_score(5, 1), "t1") < member("ab", waiting_score(5, 2), "t0")
    # A client's prefix never is another's: the length comes first.
    assert not member("abc", 0, "t").startswith("2:ab")


def test_a_client_with_few_low_priority_tasks_is_served_between_a_flood(lines):
    park(lines, [entry(f"a{i}", "alice", priority=10, created_ms=i) for i in range(50)])
    park(lines, [entry(f"b{i}", "bob", priority=1, created_ms=100 + i) for i in range(5)])
    order = drain(lines)
    assert len(order) == 55
    bob_at = [i for i, t in enumerate(order) if t.startswith("b")]
    assert bob_at == [1, 3, 5, 7, 9]
    # Each client's own tasks in their order.
    assert [t for t in order if t.startswith("a")] == [f"a{i}" for i in range(50)]


def test_priority_orders_a_clients_own_tasks(lines):
    park(
        lines,
        [entry("low", "alice", priority=1, created_ms=1), entry("high", "alice", priority=9, created_ms=2)],
    )
    assert drain(lines) == ["high", "low"]


def test_weights_give_service_in_their_ratio(lines, redis):
    redis.hset(keys.CLIENT_WEIGHTS, "alice", 2)
    park(lines, [entry(f"a{i}", "alice", created_ms=i) for i in range(100)])
    park(lines, [entry(f"b{i}", "bob", created_ms=i) for i in range(100)])
    first = drain(lines, limit=60)
    assert sum(t.startswith("a") for t in first) == 40
    assert sum(t.startswith("b") for t in first) == 20


def test_a_client_that_starts_waiting_late_gets_no_credit_for_the_time_it_did_not_wait(lines):
    park(lines, [entry(f"a{i}", "alice", created_ms=i) for i in range(30)])
    assert drain(lines, limit=10) == [f"a{i}" for i in range(10)]
    park(lines, [entry(f"b{i}", "bob", created_ms=100 + i) for i in range(10)])
    order = drain(lines, limit=10)
    # Bob joins at the pool's clock, not at 0: he alternates with alice, no burst of 10.
    assert sum(t.startswith("b") for t in order) in (5, 6)


def test_a_stale_pass_in_another_profile_is_corrected(lines):
    park(lines, [entry(f"a{i}", "alice", created_ms=i, caps=("gpu",)) for i in range(20)])
    park(lines, [entry("a-cpu", "alice", created_ms=0, caps=("cpu",))], pools=("cpu-pool",))
    drain(lines, limit=10)  # alice's pass is 10 now; her score in the cpu profile says 0
    park(lines, [entry("b-cpu", "bob", created_ms=50, caps=("cpu",))], pools=("cpu-pool",))
    # bob joined at the cpu pool's clock (none yet: his own pass, 0) and is behind alice.
    assert lines.take("cpu-pool", 1) == ["b-cpu"]


def test_without_fair_sharing_one_global_order_across_profiles(lines):
    park(lines, [entry(f"a{i}", EVERYONE, priority=10, created_ms=i, caps=("gpu",)) for i in range(5)])
    park(lines, [entry(f"b{i}", EVERYONE, priority=1, created_ms=i) for i in range(3)])
    park(lines, [entry(f"c{i}", EVERYONE, priority=7, created_ms=i, caps=()) for i in range(3)])
    order = drain(lines, fair=False)
    assert order == [f"a{i}" for i in range(5)] + [f"c{i}" for i in range(3)] + [f"b{i}" for i in range(3)]


def test_a_pool_takes_only_the_profiles_in_its_set(lines):
    park(lines, [entry("made-up", "alice", caps=("no-such-thing",))], pools=())
    park(lines, [entry("gpu", "alice")])
    assert lines.take("other-pool", 5) == []
    assert lines.take(POOL, 5) == ["gpu"]
    assert lines.profile_count() == 1  # the gpu profile left; the made-up one waits


def test_a_profile_leaves_everything_when_its_line_empties_by_take(lines, redis):
    park(lines, [entry("t1", "alice"), entry("t2", "bob")])
    pid = profile_id(("gpu",), None)
    assert redis.hexists(keys.WAITING_PROFILES, pid) and redis.sismember(keys.pool_waiting(POOL), pid)
    assert lines.total() == 2
    assert sorted(lines.take(POOL, 5)) == ["t1", "t2"]
    assert not redis.hexists(keys.WAITING_PROFILES, pid)
    assert not redis.sismember(keys.pool_waiting(POOL), pid)
    assert not redis.exists(keys.waiting_line(pid), keys.waiting_clients(pid))
    assert lines.total() == 0


def test_a_profile_leaves_everything_when_its_line_empties_by_unpark(lines, redis):
    tasks = [entry(f"t{i}", "alice", caps=(f"made-up-{i % 3}",)) for i in range(9)]
    park(lines, tasks, pools=(POOL, "pool2"))
    assert lines.profile_count() == 3 and lines.total() == 9
    assert lines.unpark(tasks[:8], lambda e: [POOL, "pool2"]) == 8
    assert lines.profile_count() == 1 and lines.total() == 1
    assert redis.smembers(keys.pool_waiting("pool2")) == {profile_id(("made-up-2",), None)}
    assert lines.which_contain(tasks) == [False] * 8 + [True]
    assert lines.unpark(tasks[8:], lambda e: [POOL, "pool2"]) == 1
    assert lines.profile_count() == 0 and not redis.exists(keys.pool_waiting("pool2"))


def test_a_task_parked_again_at_the_front_is_in_its_line_once(lines):
    first = entry("t1", "alice", priority=3, created_ms=500)
    park(lines, [first, entry("t2", "alice", priority=3, created_ms=1)])
    front = Entry("t1", ("gpu",), None, "alice", first.other, first.score)
    park(lines, [front])
    assert lines.total() == 2
    assert lines.which_contain([first]) == [True]
    assert drain(lines) == ["t1", "t2"]


def test_admission_refuses_new_profiles_past_the_cap_all_or_none(lines, redis):
    assert lines.admit([(("a",), None), (("b",), None)], 3)
    assert lines.profile_count() == 2
    assert not lines.admit([(("c",), None), (("d",), None)], 3)  # two new: 4 > 3
    assert lines.profile_count() == 2
    assert lines.admit([(("a",), None), (("c",), None)], 3)  # one new: 3
    assert lines.admit([(("a",), None), (("b",), None)], 3)  # none new: always
    assert not lines.admit([(("e",), "g")], 3)
    assert lines.profile_count() == 3


def test_a_new_pool_learns_the_waiting_profiles_it_serves(lines, redis):
    park(lines, [entry("t1", "alice", caps=("gpu", "llm")), entry("t2", "alice", caps=("cpu",))], pools=())
    added = lines.index_pool("new", lambda caps, group: "gpu" in caps)
    assert added == 1
    assert lines.take("new", 5) == ["t1"]


def test_the_sweep_forgets_profiles_without_a_line_a_page_at_a_time(lines, redis):
    assert lines.admit([((f"never-{i}",), None) for i in range(30)], 100)
    park(lines, [entry("t1", "alice", caps=("never-0",))], pools=())
    dropped = 0
    for _ in range(100):  # HSCAN pages are approximate; the cursor comes round
        dropped += lines.sweep(10)
        if lines.profile_count() == 1:
            break
    assert dropped == 29
    assert lines.profiles() == {profile_id(("never-0",), None): (("never-0",), None)}
