"""Request and response schemas: they validate input and generate /openapi.json."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from apiflask import Schema
from apiflask.fields import AwareDateTime, Boolean, Dict, Float, Integer, List, Nested, Raw, String
from apiflask.validators import Length, OneOf, Range
from marshmallow import RAISE, ValidationError, pre_load, validates_schema

from app.core import signatures
from app.core.balancing import Algorithm
from app.core.deferral import MAX_DELAY_S, MAX_DEPENDENCIES
from app.core.states import AttemptOutcome, TaskMode, TaskStatus
from app.core.task import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_POLL_INTERVAL_S,
    DEFAULT_POLL_MAX_ATTEMPTS,
    DEFAULT_PRIORITY,
    DEFAULT_TIMEOUT_S,
    MAX_TIMEOUT_S,
    METADATA_MAX_BYTES,
    MIN_POLL_INTERVAL_S,
    json_size,
)
from app.core.text import unstorable_fields

TASK_STATUSES = [status.value for status in TaskStatus]
TASK_MODES = [mode.value for mode in TaskMode]
#: What a backend may report on its callback URL.
CALLBACK_STATUSES = [s.value for s in (TaskStatus.PROCESSING, TaskStatus.COMPLETED, TaskStatus.FAILED)]
NAME = Length(min=1, max=100)


class StrictSchema(Schema):
    """Input that is refused rather than guessed at: unknown fields; in a query string a
    single-valued parameter given twice (not cut to its first value); and text no store
    can hold, anywhere in the input: a NUL or a lone UTF-16 surrogate (``app.core.text``).
    Every input schema is one of these, so that rule has this one place, and is checked
    after authentication and before anything is written."""

    class Meta:
        unknown = RAISE

    def load(self, data: Any, *, many: bool | None = None, partial: Any = None, unknown: Any = None) -> Any:
        # webargs passes unknown=EXCLUDE for a query string; Meta.unknown (RAISE) holds.
        # (So not a schema for headers, where every other header would be "unknown".)
        return super().load(data, many=many, partial=partial)

    @pre_load
    def _single_valued(self, data: Any, **_: Any) -> Any:
        getlist = getattr(data, "getlist", None)  # webargs' proxy of a query string's MultiDict
        if getlist is None:
            return data
        multiple = getattr(data, "multiple_keys", set())
        repeated = sorted(key for key in data if key not in multiple and len(getlist(key)) > 1)
        if repeated:
            raise ValidationError({key: ["given more than once"] for key in repeated})
        return data

    @pre_load
    def _storable_text(self, data: Any, **_: Any) -> Any:
        getlist = getattr(data, "getlist", None)
        # A query string's values: one string, or the list of a multi-valued parameter.
        values = {key: getlist(key) for key in data} if getlist else {}
        fields = {k: v[0] if len(v) == 1 else v for k, v in values.items()} if getlist else data
        if isinstance(fields, dict) and (bad := unstorable_fields(fields)):
            raise ValidationError({path: [reason] for path, reason in bad.items()})
        return data


#: The instants a time in input may name: from the epoch to 9999-01-01 UTC, leaving room
#: to add a timeout or a day to one and still have a date Python can hold.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


class UtcDateTime(AwareDateTime):
    """An ISO 8601 time with its offset, loaded as an aware UTC datetime from 1970 to
    9998. An offset that takes it past the years Python holds
    (``0001-01-01T00:00:00+01:00``) is a 422 here, not an overflow later."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        parsed = super()._deserialize(value, attr, data, **kwargs)
        try:
            utc = parsed.astimezone(UTC)
        except OverflowError:
            utc = None
        if utc is None or not EARLIEST <= utc < LATEST:
            raise ValidationError("must be a time from 1970-01-01 to 9998-12-31 (UTC)")
        return utc


class StrictInteger(Integer):
    """A JSON Schema ``integer``: 3, or 3.0 (the same number to JSON Schema, and to
    clients whose JSON encoder writes whole floats that way); never true, "3" or 3.5."""

    def _validated(self, value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        elif isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class StrictBoolean(Boolean):
    """JSON ``true`` or ``false`` only: not 0/1 or "yes", as the schema's ``boolean`` says."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class StrictNumber(Float):
    """A JSON number: 3 or 2.5; never true, "3", NaN or infinity."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_nan=False, **kwargs)

    def _validated(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


def _small_json(value: Any) -> None:
    size = json_size(value)
    if size > METADATA_MAX_BYTES:
        raise ValidationError(f"must be at most {METADATA_MAX_BYTES} bytes as compact JSON; this is {size}")


#: A task's ``metadata``, as the client gives it and as the API returns it.
TASK_METADATA = {"description": f"Free-form JSON object, at most {METADATA_MAX_BYTES} bytes as compact JSON"}


class TaskIn(StrictSchema):
    type = String(required=True, validate=NAME)
    priority = StrictInteger(load_default=DEFAULT_PRIORITY, validate=Range(0, 10))
    payload = Raw(load_default=None, allow_none=True)
    capabilities = List(String(validate=NAME), load_default=list, validate=Length(max=32))
    is_async = StrictBoolean(data_key="async", load_default=None, allow_none=True)
    mode = String(load_default=None, validate=OneOf(TASK_MODES))
    timeout = StrictInteger(load_default=DEFAULT_TIMEOUT_S, validate=Range(1, MAX_TIMEOUT_S))
    max_retries = StrictInteger(
        data_key="maxRetries", load_default=DEFAULT_MAX_RETRIES, validate=Range(0, 20)
    )
    region = String(load_default=None, validate=Length(min=1, max=64))
    group = String(load_default=None, validate=NAME)
    poll_interval = StrictInteger(
        data_key="pollInterval",
        load_default=DEFAULT_POLL_INTERVAL_S,
        validate=Range(MIN_POLL_INTERVAL_S, 86_400),
    )
    poll_max_attempts = StrictInteger(
        data_key="pollMaxAttempts", load_default=DEFAULT_POLL_MAX_ATTEMPTS, validate=Range(1, 100_000)
    )
    metadata = Dict(
        load_default=None,
        allow_none=True,
        validate=_small_json,
        metadata=TASK_METADATA,
        error_messages={"invalid": "must be a JSON object"},
    )
    run_at = UtcDateTime(
        data_key="runAt",
        load_default=None,
        format="iso",
        metadata={
            "description": (
                "ISO 8601 time with a timezone (e.g. 2030-01-01T09:00:00Z): the task is "
                "SCHEDULED until then, then PENDING within about a second and dispatched "
                "as usual. A time already past starts it at once. Not with delay. Its "
                "timeout counts from when it becomes PENDING."
            )
        },
    )
    delay = StrictNumber(
        load_default=None,
        validate=Range(0, MAX_DELAY_S),
        metadata={
            "description": f"Seconds from now before it starts (0-{MAX_DELAY_S}, 30 days); not with runAt."
        },
    )
    depends_on = List(
        String(validate=Length(min=1, max=100)),
        data_key="dependsOn",
        load_default=list,
        validate=Length(max=MAX_DEPENDENCIES),
        metadata={
            "description": (
                f"Up to {MAX_DEPENDENCIES} ids of tasks you may read: the task is WAITING "
                "until every one is COMPLETED. If one ends FAILED, TIMEOUT or CANCELLED, it "
                "ends FAILED with an error starting 'upstream_failed:' that names it (and "
                "so do the tasks that depend on it in turn). An unknown id, another "
                "owner's, or one that has already failed is refused with 422."
            )
        },
    )

    stream = StrictBoolean(
        load_default=False,
        metadata={"description": 'Ask the backend to stream its output ("stream": true in its request).'},
    )

    @validates_schema
    def _one_start_time(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("run_at") is not None and data.get("delay") is not None:
            raise ValidationError("give runAt or delay, not both", "runAt")


class TaskOut(Schema):
    id = String()
    type = String()
    owner = String(metadata={"description": "The subject of the token that submitted it."})
    status = String(metadata={"enum": TASK_STATUSES})
    priority = Integer()
    mode = String()
    is_async = Boolean(data_key="async")
    payload = Raw(allow_none=True)
    capabilities = List(String())
    region = String(allow_none=True)
    group = String(allow_none=True)
    metadata = Dict(allow_none=True, metadata=TASK_METADATA)
    progress = Integer()
    server_id = String(data_key="serverId", allow_none=True)
    result = Raw(allow_none=True)
    error = String(allow_none=True)
    attempts = Integer()
    max_retries = Integer(data_key="maxRetries")
    timeout = Integer()
    poll_interval = Integer(data_key="pollInterval")
    poll_max_attempts = Integer(data_key="pollMaxAttempts")
    run_at = String(
        data_key="runAt", allow_none=True, metadata={"description": "Not dispatched before this time."}
    )
    depends_on = List(
        String(),
        data_key="dependsOn",
        metadata={"description": "Ids of the tasks that must be COMPLETED before it runs."},
    )
    job_id = String(data_key="jobId", allow_none=True, metadata={"description": "The job it belongs to."})
    key = String(allow_none=True, metadata={"description": "Its item's key in its job, if it had one."})
    stream = Boolean(metadata={"description": "Whether the backend was asked to stream its output."})
    created_at = String(data_key="createdAt")
    updated_at = String(data_key="updatedAt")
    started_at = String(data_key="startedAt", allow_none=True)
    finished_at = String(data_key="finishedAt", allow_none=True)


class EventsQuery(StrictSchema):
    last_event_id = String(
        data_key="lastEventId",
        load_default=None,
        validate=Length(max=64),
        metadata={
            "description": "Resume after this event id (as the Last-Event-ID header, which "
            "wins when both are sent): for an EventSource, which cannot set headers."
        },
    )


class TaskListQuery(StrictSchema):
    status = String(load_default=None, validate=OneOf(TASK_STATUSES))
    type = String(load_default=None, validate=NAME)
    owner = String(
        load_default=None,
        validate=Length(min=1, max=255),
        metadata={"description": "Only this owner's tasks; another owner than the caller is for admins."},
    )
    limit = Integer(load_default=20, validate=Range(1, 100))
    cursor = String(load_default=None, validate=Length(max=200))


class TaskPage(Schema):
    items = List(Nested(TaskOut))
    next_cursor = String(data_key="nextCursor", allow_none=True)


class TransitionOut(Schema):
    version = Integer()
    from_status = String(data_key="fromStatus", allow_none=True, metadata={"enum": TASK_STATUSES})
    to_status = String(data_key="toStatus", metadata={"enum": TASK_STATUSES})
    attempt = Integer()
    at = String()


class AttemptOut(Schema):
    attempt = Integer()
    server_id = String(data_key="serverId")
    started_at = String(data_key="startedAt")
    ended_at = String(data_key="endedAt", allow_none=True)
    outcome = String(allow_none=True, metadata={"enum": [*(o.value for o in AttemptOutcome), None]})
    error = String(allow_none=True)
    duration_ms = Integer(data_key="durationMs", allow_none=True)
    metadata = Dict(allow_none=True, metadata={"description": "The latest metadata the backend reported"})


class AttemptList(Schema):
    items = List(Nested(AttemptOut))


class TaskHistoryOut(Schema):
    transitions = List(Nested(TransitionOut))
    attempts = List(Nested(AttemptOut))


class CallbackQuery(StrictSchema):
    token = String(required=True, validate=Length(min=1, max=500))


class CallbackIn(StrictSchema):
    status = String(required=True, validate=OneOf(CALLBACK_STATUSES))
    progress = StrictInteger(load_default=None, allow_none=True, validate=Range(0, 100))
    result = Raw(load_default=None, allow_none=True)
    chunk = Raw(
        load_default=None,
        allow_none=True,
        metadata={
            "description": "With status PROCESSING: a piece of streamed output (any JSON), "
            "relayed to the task's event stream as a chunk event."
        },
    )
    error = String(load_default=None, allow_none=True, validate=Length(max=10_000))
    metadata = Dict(load_default=None, allow_none=True)


#: A backend's URL: http(s) with a host, neither link-local nor a metadata service, and a
#: name that resolves (``services.servers.check_endpoints`` enforces what JSON Schema
#: cannot state).
BACKEND_URL = {
    "format": "uri",
    "description": "http(s) URL of the backend; not link-local or a cloud metadata address, "
    "in any spelling; a host name must resolve now (else 422)",
}


class EndpointsIn(StrictSchema):
    predict = String(required=True, validate=Length(min=1, max=2000), metadata=BACKEND_URL)
    health = String(required=True, validate=Length(min=1, max=2000), metadata=BACKEND_URL)
    status = String(validate=Length(min=1, max=2000), metadata=BACKEND_URL)
    cancel = String(validate=Length(min=1, max=2000), metadata=BACKEND_URL)
    metrics = String(validate=Length(min=1, max=2000), metadata=BACKEND_URL)


class BatchIn(StrictSchema):
    max_size = StrictInteger(data_key="maxSize", required=True, validate=Range(2, 1000))
    max_wait_ms = StrictInteger(data_key="maxWaitMs", required=True, validate=Range(0, 300_000))


class BatchOut(Schema):
    max_size = Integer(data_key="maxSize")
    max_wait_ms = Integer(data_key="maxWaitMs")


class ServerIn(StrictSchema):
    id = String(validate=Length(min=1, max=64))
    name = String(required=True, validate=NAME)
    endpoints = Nested(EndpointsIn, required=True)
    api_key = String(data_key="apiKey", validate=Length(min=1, max=512))
    max_concurrent = StrictInteger(data_key="maxConcurrent", load_default=10, validate=Range(1, 10_000))
    capabilities = List(String(validate=NAME), load_default=list, validate=Length(max=64))
    groups = List(String(validate=NAME), load_default=list, validate=Length(max=32))
    priority = StrictInteger(load_default=0, validate=Range(0, 100))
    region = String(load_default=None, validate=Length(min=1, max=64))
    weight = StrictInteger(load_default=None, allow_none=True, validate=Range(1, 1000))
    timeout_s = StrictInteger(
        data_key="timeoutSeconds", load_default=None, allow_none=True, validate=Range(1, MAX_TIMEOUT_S)
    )
    batch = Nested(BatchIn, load_default=None, allow_none=True)
    callback_signature = String(
        data_key="callbackSignature",
        allow_none=True,
        validate=OneOf(signatures.MODES),
        metadata={
            "description": '"required": every callback must carry an X-Taskfleet-Signature '
            'made with the apiKey (an apiKey is then needed); "optional": the URL token '
            "suffices and a signature is checked when present; null: the deployment's "
            "CALLBACK_SIGNATURE. Left out: a new server takes null, an existing one keeps its own."
        },
    )


class ServerOut(Schema):
    id = String()
    name = String()
    endpoints = Dict()
    max_concurrent = Integer(data_key="maxConcurrent")
    capabilities = List(String())
    groups = List(String())
    priority = Integer()
    region = String(allow_none=True)
    weight = Integer(allow_none=True)
    status = String()
    in_flight = Integer(data_key="inFlight")
    has_api_key = Boolean(data_key="hasApiKey")
    timeout_s = Integer(data_key="timeoutSeconds", allow_none=True)
    batch = Nested(BatchOut, allow_none=True)
    callback_signature = String(
        data_key="callbackSignature",
        allow_none=True,
        metadata={"description": "required, optional, or null: the deployment's CALLBACK_SIGNATURE."},
    )
    created_at = String(data_key="createdAt")
    updated_at = String(data_key="updatedAt")


class ReportedLoadOut(Schema):
    """The figures of the server's last heartbeat that carried any (null: not reported)."""

    cpu = Float(allow_none=True)
    memory = Float(allow_none=True)
    disk = Float(allow_none=True)
    network = Float(allow_none=True)
    gpu_utilization = Float(data_key="gpuUtilization", allow_none=True)
    gpu_memory = Float(data_key="gpuMemory", allow_none=True)
    in_flight = Integer(data_key="inFlight", allow_none=True)
    queue_depth = Integer(data_key="queueDepth", allow_none=True)
    reported_at = String(data_key="reportedAt", allow_none=True)


class ServerMetricsOut(Schema):
    in_flight = Integer(data_key="inFlight")
    health_score = Integer(data_key="healthScore")
    success_rate = Raw(data_key="successRate", allow_none=True)
    average_response_time = Raw(data_key="averageResponseTime", allow_none=True)
    tasks_processed = Integer(data_key="tasksProcessed")
    success_count = Integer(data_key="successCount")
    failure_count = Integer(data_key="failureCount")
    last_active_time = String(data_key="lastActiveTime", allow_none=True)
    last_seen_time = String(data_key="lastSeenTime", allow_none=True)
    circuit_state = String(data_key="circuitState")
    maintenance = Boolean()
    effective_weight = Raw(data_key="effectiveWeight", allow_none=True)
    last_check_time = String(data_key="lastCheckTime", allow_none=True)
    #: Why the last health check failed, e.g. 'timeout', 'http_503', 'server_id_mismatch'.
    last_check_error = String(data_key="lastCheckError", allow_none=True)
    reported = Nested(ReportedLoadOut)


class ServerDetailOut(ServerOut):
    metrics = Nested(ServerMetricsOut)


class ListedServerOut(ServerDetailOut):
    """A server in a list: ``metrics`` only when asked for (its own class: apispec
    registers a schema class once)."""


class ServerList(Schema):
    items = List(Nested(ListedServerOut))


class ServerListQuery(StrictSchema):
    status = String(load_default=None, validate=OneOf(["online", "degraded", "offline", "draining"]))
    group = String(load_default=None, validate=NAME)
    capability = String(load_default=None, validate=NAME)
    metrics = Boolean(
        load_default=False, metadata={"description": "Add each server's live metrics, as GET /servers/{id}."}
    )


class StrictFraction(Float):
    """A JSON number from 0 to 1 (a share of a resource in use): not a string, a boolean,
    NaN or infinity."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_nan=False, validate=Range(0, 1), **kwargs)

    def _validated(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


def _fraction(data_key: str | None = None) -> StrictFraction:
    return StrictFraction(data_key=data_key, load_default=None, allow_none=True)


class HeartbeatIn(StrictSchema):
    """A server's own figures: each optional; fractions from 0 to 1. A heartbeat that
    carries any of them replaces all of the last one's (one not given is unknown)."""

    in_flight = StrictInteger(
        data_key="inFlight", load_default=None, allow_none=True, validate=Range(0, 1_000_000)
    )
    queue_depth = StrictInteger(
        data_key="queueDepth", load_default=None, allow_none=True, validate=Range(0, 10_000_000)
    )
    cpu = _fraction()
    memory = _fraction()
    disk = _fraction()
    network = _fraction()
    gpu_utilization = _fraction("gpuUtilization")
    gpu_memory = _fraction("gpuMemory")


class MaintenanceIn(StrictSchema):
    enabled = StrictBoolean(required=True)


class AlgorithmIn(StrictSchema):
    algorithm = String(required=True, validate=OneOf([a.value for a in Algorithm]))


class AlgorithmOut(Schema):
    algorithm = String()
    available = List(String())


class HealthOut(Schema):
    status = String()


class ErrorOut(Schema):
    error = String()
    message = String()
    details = Dict()
