"""The admin side of the client on the real stack: servers, statistics, the balancer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from taskfleet_client import Client, NotFound


@pytest.fixture
def admin(fleet):
    with Client(fleet.url, fleet.admin) as client:
        yield client


def test_servers_are_registered_listed_read_and_drained(admin, fleet):
    added = admin.register_server(
        "spare",
        fleet.endpoints(),
        id="spare-1",
        api_key="spare-secret",
        max_concurrent=2,
        capabilities=["spare"],
        groups=["blue"],
        region="eu",
        batch={"maxSize": 4, "maxWaitMs": 100},
        callback_signature="required",
    )
    assert added.callback_signature == "required"
    assert (added.id, added.name, added.max_concurrent, added.region) == ("spare-1", "spare", 2, "eu")
    assert added.has_api_key and added.capabilities == ["spare"]
    assert added.batch == {"maxSize": 4, "maxWaitMs": 100}
    assert "apiKey" not in added.raw
    assert {s.id for s in admin.servers()} >= {"echo-1", "spare-1"}
    assert [s.id for s in admin.servers(group="blue")] == ["spare-1"]
    assert [s.id for s in admin.servers(capability="echo")] == ["echo-1"]

    detail = admin.server("spare-1")
    assert detail.metrics is not None and detail.metrics.maintenance is False
    assert detail.metrics.circuit_state == detail["metrics"]["circuitState"]
    assert admin.set_maintenance("spare-1", True).metrics.maintenance is True
    assert admin.set_maintenance("spare-1", False).metrics.maintenance is False
    beat = admin.heartbeat("spare-1", in_flight=1, queue_depth=3, gpu_utilization=0.5)
    assert beat.id == "spare-1" and beat.metrics.last_seen_time is not None

    assert admin.remove_server("spare-1").status == "draining"
    with pytest.raises(NotFound):
        admin.server("no-such-server")


def test_statistics_count_the_tasks(admin):
    task = admin.submit("echo", {"stat": 1}, capabilities=["echo"])
    admin.wait(task.id, timeout=30)
    stats = admin.stats()
    assert stats.total_tasks >= 1 and stats.successful_tasks >= 1
    assert stats.total_tasks == stats["totalTasks"] and stats.server_count >= 1
    assert all(hour.hour is not None for hour in stats.hourly_trend)
    since = datetime.now(UTC) - timedelta(hours=1)
    assert admin.stats(start=since).total_tasks >= 1
    assert admin.stats(end=since.isoformat()).total_tasks == 0
    hours = admin.hourly()
    assert len(hours) == 24 and hours[-1].tasks >= 1 and hours[0].hour < hours[-1].hour
    echo = admin.server_stats("echo-1")
    assert echo.server_id == "echo-1" and echo.tasks_processed >= 1

    failing = admin.submit("echo", {"fail": 500}, capabilities=["echo"], max_retries=0)
    assert admin.wait(failing.id, timeout=30).status == "FAILED"
    entries = admin.errors()
    assert entries and entries[0].count >= 1 and entries[0].last_seen is not None
    assert admin.errors(type=entries[0].error_type, limit=1)[0].message == entries[0].message


def test_the_balancing_algorithm_is_read_and_switched(admin):
    current = admin.algorithm()
    assert current.algorithm in current.available and "round-robin" in current.available
    assert admin.set_algorithm("round-robin").algorithm == "round-robin"
    assert admin.algorithm().algorithm == "round-robin"
    admin.set_algorithm(current.algorithm)
