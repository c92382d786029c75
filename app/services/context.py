"""Everything a use case needs, built once per process from Settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis

from app.backends import BackendClient, CallbackTokens
from app.config import Settings
from app.core.clock import Clock, SystemClock
from app.core.tally import Tally
from app.core.tokens import RevocationCache
from app.store.active_alerts import ActiveAlerts
from app.store.batch_lines import BatchLines
from app.store.client_limits_repo import LimitsCache
from app.store.client_state import ClientState
from app.store.db import Database
from app.store.events import EventLog
from app.store.fleet import FleetStore
from app.store.hot_state import TaskStateStore
from app.store.limit_state import LimitState
from app.store.live_counters import StatsCounters
from app.store.poll_schedule import PollSchedule
from app.store.redis_client import connect
from app.store.routine_claims import RoutineClaims
from app.store.servers_repo import EndpointCache
from app.store.start_schedule import StartSchedule
from app.store.waiting_lines import WaitingLines
from app.store.worker_presence import WorkerPresence

log = logging.getLogger("taskfleet")


class DispatchQueue(Protocol):
    """Where jobs go: Celery in production (``app.extensions.CeleryQueue``)."""

    def enqueue(self, task_id: str, attempt: int, countdown_s: float = 0) -> None:
        """A dispatch job for the attempt after ``attempt``."""

    def call_later(self, job: str, args: list[Any], countdown_s: float = 0) -> None:
        """Any other job, by its registered name."""


@dataclass
class Context:
    settings: Settings
    db: Database
    redis: redis.Redis
    tasks: TaskStateStore
    events: EventLog
    fleet: FleetStore
    waiting: WaitingLines
    limits: LimitState
    polls: PollSchedule
    starts: StartSchedule
    batches: BatchLines
    stats: StatsCounters
    workers: WorkerPresence
    alerts: ActiveAlerts
    routine_claims: RoutineClaims
    backends: BackendClient
    tokens: CallbackTokens
    queue: DispatchQueue
    endpoints: EndpointCache
    #: Per-client submission buckets and unfinished counts; each client's stored limits.
    clients: ClientState
    client_limits: LimitsCache
    clock: Clock = field(default_factory=SystemClock)
    #: Per-process cache: recounts of dirty statistics hours that are over, by hour.
    closed_recounts: dict[int, Tally] = field(default_factory=dict)
    #: The process's one reader of every open event stream (``services.events.hub_of``).
    event_hub: Any = None
    #: Per-process copy of the JWT revocations (``services.tokens.revoked_reason``).
    revocations: RevocationCache = field(default_factory=RevocationCache)

    def now_ms(self) -> int:
        return self.clock.now_ms()


def build_context(
    settings: Settings,
    queue: DispatchQueue,
    clock: Clock | None = None,
    redis_client: redis.Redis | None = None,
    db: Database | None = None,
) -> Context:
    clock = clock or SystemClock()
    client = redis_client if redis_client is not None else connect(settings.redis_url)
    db = db or Database(settings.database_url)
    return Context(
        settings=settings,
        db=db,
        redis=client,
        tasks=TaskStateStore(client, settings.hot_state_ttl_s),
        events=EventLog(client),
        fleet=FleetStore(client),
        waiting=WaitingLines(client),
        limits=LimitState(client),
        polls=PollSchedule(client),
        starts=StartSchedule(client),
        batches=BatchLines(client),
        stats=StatsCounters(client),
        workers=WorkerPresence(client),
        alerts=ActiveAlerts(client),
        routine_claims=RoutineClaims(client),
        backends=BackendClient(
            settings.connect_timeout_s,
            max_response_bytes=settings.backend_max_response_bytes,
            max_event_bytes=settings.backend_max_event_bytes,
        ),
        tokens=CallbackTokens(settings.callback_secret, clock, settings.clock_leeway_s),
        queue=queue,
        endpoints=EndpointCache(db),
        clients=ClientState(client),
        client_limits=LimitsCache(db),
        clock=clock,
    )
