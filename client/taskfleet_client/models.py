"""What the API answers, as typed objects that still read like its JSON.

Each object wraps the JSON dict it came from: ``task.status`` and ``task["status"]``
are the same value, ``task.raw`` is the whole dict (fields this client does not know yet
included), and ``dict(task)`` or ``json.dumps(task.raw)`` give the JSON back. Typed
attributes are snake_case (``task.server_id``); keys stay the API's camelCase
(``task["serverId"]``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")
ObjT = TypeVar("ObjT", bound="ApiObject")

#: Statuses a task never leaves (except FAILED and TIMEOUT, by a manual retry).
FINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED"})


class ApiObject(Mapping[str, Any]):
    """A JSON object of the API: read-only mapping access plus typed attributes."""

    __slots__ = ("raw",)

    def __init__(self, raw: Mapping[str, Any]) -> None:
        #: The JSON object as the API sent it.
        self.raw: dict[str, Any] = dict(raw)

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.raw!r})"


class Field(Generic[T]):
    """A typed attribute that reads one key of the wrapped JSON and converts it; a
    missing key or a JSON null reads as ``default``."""

    def __init__(self, key: str, convert: Callable[[Any], T], default: T) -> None:
        self.key, self.convert, self.default = key, convert, default

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Field[T]: ...
    @overload
    def __get__(self, obj: ApiObject, owner: type[Any]) -> T: ...
    def __get__(self, obj: ApiObject | None, owner: type[Any]) -> Field[T] | T:
        if obj is None:
            return self
        value = obj.raw.get(self.key)
        return self.default if value is None else self.convert(value)


def _same(value: Any) -> Any:
    return value


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def text(key: str) -> Field[str]:
    return Field(key, str, "")


def maybe_text(key: str) -> Field[str | None]:
    return Field(key, str, None)


def integer(key: str) -> Field[int]:
    return Field(key, int, 0)


def maybe_integer(key: str) -> Field[int | None]:
    return Field(key, int, None)


def maybe_number(key: str) -> Field[float | None]:
    return Field(key, float, None)


def flag(key: str) -> Field[bool]:
    return Field(key, bool, False)


def texts(key: str) -> Field[list[str]]:
    return Field(key, lambda value: [str(item) for item in value], [])


def time(key: str) -> Field[datetime | None]:
    return Field(key, _time, None)


def anything(key: str) -> Field[Any]:
    return Field(key, _same, None)


def nested(key: str, cls: type[ObjT]) -> Field[ObjT | None]:
    return Field(key, cls, None)


def many(key: str, cls: type[ObjT]) -> Field[list[ObjT]]:
    return Field(key, lambda value: [cls(item) for item in value], [])


class Task(ApiObject):
    """A task (``GET /api/task/{id}``); see the README's task fields."""

    __slots__ = ()

    id = text("id")
    type = text("type")
    #: SCHEDULED (until run_at), WAITING (for depends_on), PENDING, PROCESSING, COMPLETED,
    #: FAILED, TIMEOUT, CANCELLED.
    status = text("status")
    #: 0-100, as the backend reported it.
    progress = integer("progress")
    priority = integer("priority")
    #: sync, callback or poll.
    mode = text("mode")
    payload = anything("payload")
    result = anything("result")
    error = maybe_text("error")
    capabilities = texts("capabilities")
    region = maybe_text("region")
    group = maybe_text("group")
    server_id = maybe_text("serverId")
    #: Attempts started so far.
    attempts = integer("attempts")
    max_retries = integer("maxRetries")
    #: Seconds an attempt may run.
    timeout = integer("timeout")
    poll_interval = integer("pollInterval")
    poll_max_attempts = integer("pollMaxAttempts")
    #: Not dispatched before this time (None: at once).
    run_at = time("runAt")
    #: Ids of the tasks that must be COMPLETED before it runs.
    depends_on = texts("dependsOn")
    #: The job it belongs to, and its item's key in that job.
    job_id = maybe_text("jobId")
    key = maybe_text("key")
    created_at = time("createdAt")
    updated_at = time("updatedAt")
    started_at = time("startedAt")
    finished_at = time("finishedAt")

    @property
    def done(self) -> bool:
        """The task is final: COMPLETED, FAILED, TIMEOUT or CANCELLED."""
        return self.status in FINAL_STATUSES

    @property
    def ok(self) -> bool:
        """The task COMPLETED; ``result`` holds the backend's answer."""
        return self.status == "COMPLETED"


@dataclass(frozen=True)
class TaskPage:
    """One page of ``GET /api/tasks``: the tasks, newest first, and the cursor of the next
    page (None on the last)."""

    tasks: list[Task]
    next_cursor: str | None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> TaskPage:
        return cls([Task(item) for item in body.get("items", [])], body.get("nextCursor"))


class ServerMetrics(ApiObject):
    """Live figures of a server (in ``GET /api/servers/{id}``)."""

    __slots__ = ()

    in_flight = integer("inFlight")
    health_score = integer("healthScore")
    success_rate = maybe_number("successRate")
    #: Milliseconds.
    average_response_time = maybe_number("averageResponseTime")
    tasks_processed = integer("tasksProcessed")
    success_count = integer("successCount")
    failure_count = integer("failureCount")
    last_active_time = time("lastActiveTime")
    last_seen_time = time("lastSeenTime")
    #: closed, open or half-open.
    circuit_state = text("circuitState")
    maintenance = flag("maintenance")
    effective_weight = maybe_number("effectiveWeight")


class Server(ApiObject):
    """A registered backend server (never its apiKey)."""

    __slots__ = ()

    id = text("id")
    name = text("name")
    #: online, degraded, offline or draining.
    status = text("status")
    endpoints = anything("endpoints")
    max_concurrent = integer("maxConcurrent")
    in_flight = integer("inFlight")
    capabilities = texts("capabilities")
    groups = texts("groups")
    priority = integer("priority")
    region = maybe_text("region")
    weight = maybe_integer("weight")
    has_api_key = flag("hasApiKey")
    timeout_seconds = maybe_integer("timeoutSeconds")
    batch = anything("batch")
    #: required, optional, or None: the deployment's CALLBACK_SIGNATURE.
    callback_signature = maybe_text("callbackSignature")
    created_at = time("createdAt")
    updated_at = time("updatedAt")
    #: Only from ``server(id)``, ``set_maintenance`` and ``heartbeat``.
    metrics = nested("metrics", ServerMetrics)


class ServerStats(ApiObject):
    """One server's attempts over all time (``GET /api/stats/servers/{id}``)."""

    __slots__ = ()

    server_id = text("serverId")
    tasks_processed = integer("tasksProcessed")
    success_count = integer("successCount")
    failure_count = integer("failureCount")
    success_rate = maybe_number("successRate")
    #: Milliseconds.
    average_response_time = maybe_number("averageResponseTime")
    last_active_time = time("lastActiveTime")


class Hour(ApiObject):
    """One hour of ``GET /api/stats/hourly`` (and of ``Stats.hourly_trend``)."""

    __slots__ = ()

    hour = time("hour")
    #: Tasks submitted in the hour.
    tasks = integer("tasks")
    successful = integer("successful")
    failed = integer("failed")
    #: Milliseconds.
    avg_duration = maybe_number("avgDuration")


class Stats(ApiObject):
    """Totals over a range (``GET /api/stats``)."""

    __slots__ = ()

    total_tasks = integer("totalTasks")
    pending_tasks = integer("pendingTasks")
    processing_tasks = integer("processingTasks")
    successful_tasks = integer("successfulTasks")
    #: FAILED or TIMEOUT.
    failed_tasks = integer("failedTasks")
    timed_out_tasks = integer("timedOutTasks")
    cancelled_tasks = integer("cancelledTasks")
    retried_tasks = integer("retriedTasks")
    #: Milliseconds.
    average_processing_time = maybe_number("averageProcessingTime")
    server_count = integer("serverCount")
    top_servers = many("topServers", ServerStats)
    hourly_trend = many("hourlyTrend", Hour)


class Attempt(ApiObject):
    """One attempt of a task on a server (``GET /api/task/{id}/attempts``)."""

    __slots__ = ()

    attempt = integer("attempt")
    server_id = maybe_text("serverId")
    started_at = time("startedAt")
    ended_at = time("endedAt")
    outcome = maybe_text("outcome")
    error = maybe_text("error")
    duration_ms = maybe_integer("durationMs")
    metadata = anything("metadata")


class ErrorEntry(ApiObject):
    """Failures of one (error type, message) (``GET /api/errors``)."""

    __slots__ = ()

    error_type = text("errorType")
    message = text("message")
    count = integer("count")
    first_seen = time("firstSeen")
    last_seen = time("lastSeen")


class Algorithm(ApiObject):
    """The load-balancing algorithm in use and the ones available."""

    __slots__ = ()

    algorithm = text("algorithm")
    available = texts("available")
