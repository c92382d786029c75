"""The slot ledger's comparison: leases against running attempts, in slot units."""

from app.core.slot_ledger import Lease, RunningAttempt, compare, old_units, suspects


def lease(task: str, server: str = "s1", cost: int = 1, at_ms: int = 0, attempt: int = 1) -> Lease:
    return Lease(server, task, attempt, cost, at_ms)


def running(task: str, server: str = "s1", cost: int = 1, at_ms: int = 0, attempt: int = 1) -> RunningAttempt:
    return RunningAttempt(server, task, attempt, "echo", cost, at_ms)


def test_matched_leases_and_attempts_are_no_drift_whatever_their_age_or_cost():
    leases = [lease("a", cost=3, at_ms=0), lease("b", at_ms=900)]
    attempts = [running("a", cost=2, at_ms=10), running("b", at_ms=905)]
    assert compare(leases, attempts, cutoff_ms=1000) == {}


def test_what_is_unmatched_past_the_grace_counts_in_units_per_server():
    leases = [lease("stray", cost=2, at_ms=100), lease("young", at_ms=2000), lease("x", "s2", at_ms=0)]
    attempts = [running("bare", "s2", cost=4, at_ms=50), running("fresh", at_ms=1500)]
    drifted = compare(leases, attempts, cutoff_ms=1000)
    assert {s: d.units for s, d in drifted.items()} == {"s1": 2, "s2": 1 - 4}
    assert [x.task_id for x in drifted["s1"].leases] == ["stray"]
    assert [x.task_id for x in drifted["s2"].attempts] == ["bare"]


def test_another_attempt_or_another_server_is_not_a_match():
    drifted = compare([lease("a", attempt=1)], [running("a", attempt=2), running("b", "s2")], cutoff_ms=10)
    assert {s: d.units for s, d in drifted.items()} == {"s1": 0, "s2": -1}
    assert len(drifted["s1"].leases) == 1 and len(drifted["s1"].attempts) == 1


def test_a_lease_seen_in_another_read_keeps_its_attempt_from_counting():
    assert compare([], [running("a")], cutoff_ms=10, also_held=[lease("a")]) == {}


def test_only_servers_whose_old_units_differ_are_suspects():
    leases = [lease("a", cost=2), lease("b", "s2"), lease("c", "s3", at_ms=5000)]
    units = old_units(leases, cutoff_ms=1000)
    assert units == {"s1": 2, "s2": 1}
    assert suspects(units, {"s1": 2, "s2": 2, "s4": 1}) == {"s2", "s4"}
