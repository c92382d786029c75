"""/metrics: Prometheus text computed from Redis and the database, so every API
process gives the same answer for the whole fleet."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from app import create_app
from app.core.metrics import LATENCY_BUCKETS_MS
from app.services.context import build_context
from app.store import scripts
from app.store.models import TaskAttemptRow
from tests.services.helpers import drain, register_backend, submit_task


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_report_the_fleet_and_two_api_processes_agree(ctx, client, backend):
    _, port = backend
    register_backend(ctx, port, "s1", max_concurrent=3)
    register_backend(ctx, port, "s2", max_concurrent=5)
    for i in range(6):
        submit_task(ctx, {"fail": 400} if i % 3 == 0 else {"n": i})
    submit_task(ctx, capabilities=("gpu",))  # waits: nobody offers gpu
    drain(ctx)

    got = scrape(client)
    assert got[("taskfleet_task_events_total", (("event", "created"), ("type", "echo")))] == 7
    assert got[("taskfleet_task_events_total", (("event", "completed"), ("type", "echo")))] == 4
    assert got[("taskfleet_task_events_total", (("event", "failed"), ("type", "echo")))] == 2
    assert got[("taskfleet_tasks", (("status", "PENDING"), ("type", "echo")))] == 1
    ok = sum(
        v
        for (name, labels), v in got.items()
        if name == "taskfleet_backend_attempts_total" and ("outcome", "success") in labels
    )
    failed = sum(
        v
        for (name, labels), v in got.items()
        if name == "taskfleet_backend_attempts_total" and ("outcome", "failure") in labels
    )
    assert (ok, failed) == (4, 2)
    assert got[("taskfleet_server_slots", (("server", "s1"),))] == 3
    assert got[("taskfleet_server_slots", (("server", "s2"),))] == 5
    assert got[("taskfleet_server_in_flight", (("server", "s1"),))] == 0
    assert got[("taskfleet_server_up", (("server", "s2"),))] == 1
    assert got[("taskfleet_waiting_tasks", ())] == 1
    with ctx.db.session() as session:
        started = session.scalar(select(func.count()).select_from(TaskAttemptRow))
    assert got[("taskfleet_dispatch_latency_seconds_count", ())] == started == 6
    assert got[("taskfleet_dispatch_latency_seconds_bucket", (("le", "+Inf"),))] == 6

    other = create_app(context=build_context(ctx.settings, ctx.queue, redis_client=ctx.redis, db=ctx.db))
    assert scrape(other.test_client()) == got


def test_the_latency_buckets_of_the_lua_script_and_of_python_agree():
    source = scripts.source("task_transition")
    (bounds,) = re.findall(r"LATENCY_BUCKETS_MS = \{([^}]*)\}", source)
    assert tuple(int(b) for b in bounds.split(",")) == LATENCY_BUCKETS_MS
