"""Concurrency limits through the client on the real stack (admin): set, read, list,
remove; a limit of one holds its type to one at a time as the backend sees it."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from taskfleet_client import AsyncClient, Client, DynamicLimit, Forbidden, Limit, NotFound, Unprocessable


@pytest.fixture
def admin(fleet):
    with Client(fleet.url, fleet.admin) as client:
        yield client


def test_a_static_limit_of_one_runs_its_type_one_at_a_time(admin, fleet):
    kind = f"one-{uuid.uuid4().hex[:8]}"
    limit = admin.set_limit(kind, max_concurrent=1)
    assert isinstance(limit, Limit) and (limit.type, limit.max_concurrent, limit.dynamic) == (kind, 1, None)
    assert limit.current == 1 and limit.in_flight == 0 and limit.last_change is not None

    ids = [admin.submit(kind, {"i": i}, capabilities=["echo"]).id for i in range(4)]
    held = admin.limit(kind)
    assert held.in_flight <= 1 and held["type"] == kind
    assert all(admin.wait(task_id, timeout=60).ok for task_id in ids)
    assert fleet.backend.stats()["max_in_flight_by_type"][kind] == 1  # echo-1 has 4 slots
    assert kind in {found.type for found in admin.limits()}

    assert admin.remove_limit(kind) is None
    with pytest.raises(NotFound):
        admin.limit(kind)
    assert kind not in {found.type for found in admin.limits()}


def test_a_scaling_limit_starts_at_its_initial_value_and_can_be_replaced(admin):
    kind = f"dyn-{uuid.uuid4().hex[:8]}"
    rule = DynamicLimit.of(2, 6, 2, 60, 180)
    limit = admin.set_limit(kind, dynamic=rule)
    assert limit.dynamic == rule and limit.max_concurrent is None and limit.current == 2
    assert limit.dynamic is not None and (limit.dynamic.max, limit.dynamic.down_every_seconds) == (6, 180)
    again = admin.set_limit(kind, dynamic=limit.dynamic)  # what was read can be sent back
    assert again.dynamic == rule
    static = admin.set_limit(kind, max_concurrent=3)
    assert (static.max_concurrent, static.dynamic, static.current) == (3, None, 3)
    admin.remove_limit(kind)

    everything = admin.set_limit("*", max_concurrent=1000)
    assert everything.type == "*" and admin.limit("*").max_concurrent == 1000
    admin.remove_limit("*")


def test_a_wrong_limit_is_refused(admin, fleet):
    with pytest.raises(Unprocessable):
        admin.set_limit("bad", dynamic=DynamicLimit.of(5, 2, 1, 60, 60))  # initial above max
    with pytest.raises(ValueError, match="exactly one"):
        admin.set_limit("bad")
    with pytest.raises(NotFound):
        admin.remove_limit(f"never-{uuid.uuid4().hex[:8]}")
    with Client(fleet.url, fleet.alice) as alice, pytest.raises(Forbidden):
        alice.limits()


def test_the_async_client_sets_reads_lists_and_removes_limits(fleet):
    async def flow() -> None:
        async with AsyncClient(fleet.url, fleet.admin) as tf:
            kind = f"async-{uuid.uuid4().hex[:8]}"
            assert (await tf.set_limit(kind, max_concurrent=2)).current == 2
            assert (await tf.limit(kind)).max_concurrent == 2
            assert kind in {found.type for found in await tf.limits()}
            await tf.remove_limit(kind)
            with pytest.raises(NotFound):
                await tf.limit(kind)

    asyncio.run(flow())
