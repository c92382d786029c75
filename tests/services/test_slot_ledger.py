"""Slot drift: leases Redis holds against attempts the database has running, on
``/metrics`` and repaired by ``reconcile`` (each repair logged), on fakeredis + SQLite
and on real Redis + Postgres."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from app.core.clock import ManualClock
from app.core.slot_ledger import RECLAIM_AFTER_S
from app.core.states import TaskStatus
from app.services import maintenance, slot_ledger, state_sync
from app.store import keys, tasks_repo
from app.store.records import ServerRecord
from tests.api.test_metrics import scrape
from tests.services.helpers import drain, register_backend, start_attempt, submit_task

GRACE_S = 60  # SLOT_DRIFT_GRACE_S by default


@pytest.fixture
def world(ctx, backend):
    """``ctx`` on a manual clock with one server s1 of two slots."""
    _, port = backend
    ctx.clock = ManualClock(1_800_000_000_000)
    register_backend(ctx, port, "s1", max_concurrent=2)
    maintenance.reconcile(ctx)  # Redis is now "rebuilt": a later loss is noticed
    return ctx


def lose_lease(ctx, server_id: str, task_id: str, attempt: int, cost: int = 1) -> None:
    """The lease vanishes from Redis while its attempt runs (a bug, an operator's hand)."""
    pool = ctx.redis.hget(keys.server(server_id), ServerRecord.POOL_FIELD)
    assert ctx.redis.hdel(keys.pool_leases(pool), keys.lease_field(task_id, attempt)) == 1
    ctx.redis.hincrby(keys.pool(pool), f"{server_id}|used", -cost)


def test_a_running_attempt_and_its_lease_are_no_drift(world):
    start_attempt(world, submit_task(world))
    world.clock.advance(GRACE_S + 1)
    assert slot_ledger.drift(world) == {"s1": 0}
    assert slot_ledger.repair(world) == 0


def test_a_slot_held_with_no_running_attempt_is_drift_after_the_grace_and_is_freed(world, caplog):
    assert world.fleet.reserve("ghost", 1, ("echo",), now_ms=world.now_ms()) == "s1"
    assert world.fleet.reserve("ghost2", 1, ("echo",), now_ms=world.now_ms()) == "s1"
    waiting_id = submit_task(world)
    assert drain(world) == ["waiting"]  # both slots are held
    world.clock.advance(GRACE_S - 1)
    assert slot_ledger.drift(world) == {"s1": 0}  # a dispatch may be between Redis and the database
    assert slot_ledger.repair(world) == 0
    world.clock.advance(1)
    assert slot_ledger.drift(world) == {"s1": 2}

    with caplog.at_level(logging.WARNING, logger="taskfleet.slot_ledger"):
        assert maintenance.reconcile(world)["drift_repaired"] == 2
    assert "slot drift on s1: freed the slot of task ghost attempt 1" in caplog.text
    assert slot_ledger.drift(world) == {"s1": 0}
    assert drain(world) == ["completed"]  # the freed slot woke the waiting task
    assert state_sync.load(world, waiting_id).status is TaskStatus.COMPLETED
    assert world.fleet.in_flight("s1") == 0


def test_an_attempt_running_without_a_slot_is_drift_and_gets_its_slot_back(world, caplog):
    task_id = submit_task(world)
    start_attempt(world, task_id)
    lose_lease(world, "s1", task_id, 1)
    assert world.fleet.in_flight("s1") == 0
    world.clock.advance(GRACE_S + 1)
    assert slot_ledger.drift(world) == {"s1": -1}

    with caplog.at_level(logging.WARNING, logger="taskfleet.slot_ledger"):
        assert slot_ledger.repair(world) == 1
    assert f"slot drift on s1: restored the slot of task {task_id} attempt 1" in caplog.text
    assert slot_ledger.drift(world) == {"s1": 0}
    assert world.fleet.leases("s1") == [(task_id, 1, 1)]
    assert slot_ledger.repair(world) == 0


def test_slot_costs_count_in_units_on_both_sides(world):
    world.settings = dataclasses.replace(world.settings, slot_costs={"echo": 2})
    task_id = submit_task(world)
    world.queue.take()
    assert world.fleet.reserve(task_id, 1, ("echo",), cost=2, now_ms=world.now_ms()) == "s1"
    state_sync.apply(
        world,
        task_id,
        [TaskStatus.PENDING],
        TaskStatus.PROCESSING,
        expect_attempt=0,
        attempt=1,
        server_id="s1",
        started_ms=world.now_ms(),
    )
    world.clock.advance(GRACE_S + 1)
    assert slot_ledger.drift(world) == {"s1": 0}
    lose_lease(world, "s1", task_id, 1, cost=2)
    assert slot_ledger.drift(world) == {"s1": -2}
    slot_ledger.repair(world)
    assert world.fleet.in_flight("s1") == 2 and slot_ledger.drift(world) == {"s1": 0}


def test_a_task_redis_runs_but_the_database_missed_is_written_not_freed(world, caplog):
    """The worker died between the Redis transition to PROCESSING and the database write:
    the slot is right, the database is behind."""
    task_id = submit_task(world)
    world.queue.take()
    assert world.fleet.reserve(task_id, 1, ("echo",), now_ms=world.now_ms()) == "s1"
    world.tasks.transition(
        task_id, [TaskStatus.PENDING], TaskStatus.PROCESSING, world.now_ms(), 0, "", attempt=1,
        server_id="s1", started_ms=world.now_ms(),
    )  # fmt: skip
    world.clock.advance(GRACE_S + 1)
    assert slot_ledger.drift(world) == {"s1": 1}

    with caplog.at_level(logging.WARNING, logger="taskfleet.slot_ledger"):
        assert slot_ledger.repair(world) == 1
    assert f"task {task_id} attempt 1 runs in redis but not in the database" in caplog.text
    with world.db.session() as session:
        assert tasks_repo.get_row(session, task_id).status == "PROCESSING"
    assert world.fleet.leases("s1") == [(task_id, 1, 1)]
    assert slot_ledger.drift(world) == {"s1": 0}


def test_metrics_export_the_drift_per_server(world, app):
    assert world.fleet.reserve("ghost", 1, ("echo",), now_ms=world.now_ms()) == "s1"
    world.clock.advance(GRACE_S + 1)
    assert scrape(app.test_client())[("taskfleet_slot_drift", (("server", "s1"),))] == 1
    maintenance.reconcile(world)
    world.clock.advance(world.settings.metrics_max_age_s)  # past the cached text's age
    assert scrape(app.test_client())[("taskfleet_slot_drift", (("server", "s1"),))] == 0


def test_a_shorter_grace_never_frees_a_slot_sooner_than_the_reclaim_job(world):
    """A slot kept after a predict timeout is kept a minute on purpose: a grace set
    lower reports it sooner but does not free it sooner."""
    world.settings = dataclasses.replace(world.settings, slot_drift_grace_s=10)
    assert world.fleet.reserve("kept", 1, ("echo",), now_ms=world.now_ms()) == "s1"
    world.clock.advance(RECLAIM_AFTER_S - 1)
    assert slot_ledger.drift(world) == {"s1": 1}
    assert slot_ledger.repair(world) == 0
    world.clock.advance(1)
    assert slot_ledger.repair(world) == 1
    assert slot_ledger.drift(world) == {"s1": 0}


def test_nothing_is_repaired_while_redis_awaits_its_rebuild(world):
    """After a loss the rebuild restores every slot (and resumes polls) from the rows;
    loading hot state first would make it skip those tasks."""
    task_id = submit_task(world)
    start_attempt(world, task_id)
    world.clock.advance(GRACE_S + 1)
    world.redis.flushall()
    assert slot_ledger.drift(world) == {"s1": -1}  # the slot went with the rest
    assert slot_ledger.repair(world) == 0
    assert world.tasks.get(task_id) is None
    maintenance.reconcile(world)
    assert world.fleet.leases("s1") == [(task_id, 1, 1)]
    assert slot_ledger.drift(world) == {"s1": 0}
