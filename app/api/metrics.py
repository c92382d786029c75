"""``GET /metrics`` in the Prometheus text format. Every figure is read from Redis and
the database (no per-process counters), so any API process answers for the whole
fleet: several gunicorn workers and Celery processes need no multiprocess set-up.
The text is computed at most once per ``METRICS_MAX_AGE_S`` per process and shared by
the scrapes within that age, so scrapers cannot load the stores."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any

from apiflask import APIBlueprint
from flask import Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from app.api.errors import error_response
from app.core.metrics import cumulative_buckets
from app.core.snapshot_cache import SnapshotCache
from app.extensions import current_context as ctx
from app.services import metrics
from app.services.metrics import Snapshot

bp = APIBlueprint("metrics", __name__, tag="Metrics")

#: Where an app keeps its cache of the metrics text (``app.extensions``).
CACHE = "taskfleet_metrics_cache"

TASK_EVENTS = ("created", "completed", "failed", "timeout", "cancelled", "retried")


def _gauge(name: str, doc: str, labels: list[str] | None = None, value: float | None = None) -> Any:
    return GaugeMetricFamily(f"taskfleet_{name}", doc, labels=labels, value=value)


def _task_families(s: Snapshot) -> Iterator[Any]:
    tasks = _gauge("tasks", "Unfinished tasks now, by status.", ["type", "status"])
    for (task_type, status), n in sorted(s.tasks_now.items()):
        tasks.add_metric([task_type, status], n)
    yield tasks
    events = CounterMetricFamily(
        "taskfleet_task_events",
        "Task events by type: created, completed, failed, timeout, cancelled, retried.",
        labels=["type", "event"],
    )
    for task_type, counters in sorted(s.by_type.items()):
        for event in TASK_EVENTS:
            events.add_metric([task_type, event], counters.get(event, 0))
    yield events
    yield HistogramMetricFamily(
        "taskfleet_dispatch_latency_seconds",
        "Time from PENDING to PROCESSING (waiting for a worker, a slot or a backoff).",
        buckets=cumulative_buckets(s.latency),
        sum_value=s.latency.get("sum_ms", 0) / 1000,
    )


def _server_families(s: Snapshot) -> Iterator[Any]:
    attempts = CounterMetricFamily(
        "taskfleet_backend_attempts", "Attempts that ended on a server.", labels=["server", "outcome"]
    )
    response = SummaryMetricFamily(
        "taskfleet_backend_response_seconds", "Time of attempts on a server.", labels=["server"]
    )
    for server_id, counters in sorted(s.by_server.items()):
        ok, failed = counters.get("attempts_ok", 0), counters.get("attempts_failed", 0)
        attempts.add_metric([server_id, "success"], ok)
        attempts.add_metric([server_id, "failure"], failed)
        seconds = counters.get("attempt_ms", 0) / 1000
        response.add_metric([server_id], count_value=ok + failed, sum_value=seconds)
    slots = _gauge("server_slots", "Slots (maxConcurrent) of a server.", ["server"])
    used = _gauge("server_in_flight", "Slots in use on a server.", ["server"])
    up = _gauge("server_up", "1 if the server takes tasks now.", ["server"])
    for server_id, figures in sorted(s.slots.items()):
        slots.add_metric([server_id], figures.max)
        used.add_metric([server_id], figures.used)
        up.add_metric([server_id], int(figures.ok))
    drift = _gauge(
        "slot_drift",
        "Slot units held in Redis minus units of attempts the database has running, on a "
        "server (past SLOT_DRIFT_GRACE_S); reconcile repairs it.",
        ["server"],
    )
    for server_id, units in sorted(s.slot_drift.items()):
        drift.add_metric([server_id], units)
    yield from (attempts, response, slots, used, up, drift)


def _queue_families(s: Snapshot) -> Iterator[Any]:
    queues = _gauge("queue_depth", "Messages waiting in a Celery queue.", ["queue"])
    for name, depth in sorted(s.queues.items()):
        queues.add_metric([name], depth)
    yield queues
    yield _gauge("waiting_tasks", "Tasks waiting for a free slot.", value=s.waiting)
    yield _gauge("scheduled_retries", "Retries waiting for their backoff.", value=s.scheduled)
    yield _gauge("workers", "Celery workers seen in the last 30 s.", value=s.workers)


def _limit_families(s: Snapshot) -> Iterator[Any]:
    current = _gauge("limit_current", "A concurrency limit's value now.", ["type"])
    in_flight = _gauge("limit_in_flight", "Attempts a concurrency limit counts as running.", ["type"])
    held = _gauge("limit_waiting", "Tasks a concurrency limit holds back.", ["type"])
    for figures in s.limits:
        current.add_metric([figures["type"]], figures["current"])
        in_flight.add_metric([figures["type"]], figures["inFlight"])
        held.add_metric([figures["type"]], figures["waiting"])
    yield from (current, in_flight, held)


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        yield from _task_families(self.snapshot)
        yield from _server_families(self.snapshot)
        yield from _queue_families(self.snapshot)
        yield from _limit_families(self.snapshot)


def render() -> bytes:
    """The metrics text, computed now from Redis and the database."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(metrics.snapshot(ctx())))
    return generate_latest(registry)


def _cache() -> SnapshotCache[bytes]:
    """This app's cache of the metrics text (made on first use)."""
    cache = current_app.extensions.get(CACHE)
    if cache is None:
        max_age_ms = int(ctx().settings.metrics_max_age_s * 1000)
        cache = current_app.extensions.setdefault(CACHE, SnapshotCache[bytes](max_age_ms))
    return cache


def _authorized() -> bool:
    token = ctx().settings.metrics_token
    if not token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@bp.get("/metrics")
@bp.doc(
    summary="Prometheus metrics",
    description=(
        "The Prometheus text format, computed at most once per METRICS_MAX_AGE_S (default 5 s) "
        "per API process: scrapes within that age share one answer. When METRICS_TOKEN is set, "
        "`Authorization: Bearer <METRICS_TOKEN>` is required; otherwise there is no "
        "authentication (expose it only to the scraper's network)."
    ),
    responses={
        200: {"description": "Prometheus text format", "content": {"text/plain": {}}},
        401: {"description": "METRICS_TOKEN is set and the request does not carry it"},
    },
)
def scrape() -> Response:
    if not _authorized():
        response = error_response(401, "unauthorized", "/metrics wants Authorization: Bearer <METRICS_TOKEN>")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    text = _cache().get(ctx().now_ms, render)
    return Response(text, mimetype=CONTENT_TYPE_LATEST)
