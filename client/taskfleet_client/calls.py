"""Every API request as data, built without I/O, so that ``Client`` and ``AsyncClient``
send exactly the same requests and read the answers the same way.

A :class:`Call` names the method, the path below ``/api``, the query, the JSON body,
the headers, whether it may be sent twice (``idempotent``: retried after a lost
answer) and how to turn the JSON answer into the result.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypedDict, TypeVar, Unpack
from urllib.parse import quote

from taskfleet_client.job_models import Job, JobPage
from taskfleet_client.limit_models import Limit
from taskfleet_client.models import (
    Algorithm,
    Attempt,
    ErrorEntry,
    Hour,
    Server,
    ServerStats,
    Stats,
    Task,
    TaskPage,
)
from taskfleet_client.token_models import Revocation, Revocations

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its answer."""

    method: str
    #: Below the API root, e.g. ``/task/<id>``.
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, str | int] = field(default_factory=dict)
    #: The JSON body; None sends none.
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Safe to send again when the answer was lost (a read, an update to a given value,
    #: a submit with its Idempotency-Key). A refused connection is retried for any call:
    #: nothing was sent.
    idempotent: bool = True


class TaskFields(TypedDict, total=False):
    """Optional fields of a new task, in snake_case (the README's task fields)."""

    capabilities: Sequence[str]
    priority: int
    #: sync, callback or poll.
    mode: str
    #: Seconds an attempt may run.
    timeout: int
    max_retries: int
    region: str
    group: str
    poll_interval: int
    poll_max_attempts: int
    #: Not before this time: an aware datetime, or ISO 8601 text with a timezone (a naive
    #: one is refused: the server could only guess its zone). The task is SCHEDULED
    #: until then. Not with ``delay``.
    run_at: datetime | str
    #: Seconds from now before it starts (0 to 30 days). Not with ``run_at``.
    delay: float
    #: Ids of tasks that must be COMPLETED first (inside a job, sibling keys too); the
    #: task is WAITING until then.
    depends_on: Sequence[str]
    #: Ask the backend to stream its output: its chunks come as ``chunk`` events of the
    #: task's event stream (``Client.events``, ``Client.follow``).
    stream: bool
    #: Fields in the API's own camelCase, sent as they are (for fields newer than this client).
    extra: Mapping[str, Any]


class SubmitFields(TaskFields, total=False):
    """Optional fields of ``submit``: the task's, and its Idempotency-Key."""

    #: Sent as the Idempotency-Key header; a random one when not given, so that a retried
    #: submit never creates a second task.
    idempotency_key: str


class ServerFields(TypedDict, total=False):
    """Optional fields of a server registration, in snake_case."""

    id: str
    api_key: str
    max_concurrent: int
    capabilities: Sequence[str]
    groups: Sequence[str]
    priority: int
    region: str
    weight: int
    timeout_seconds: int
    #: ``{"maxSize": 8, "maxWaitMs": 30000}``
    batch: Mapping[str, int]
    #: "required": every callback must be signed with the apiKey; "optional": the URL
    #: token suffices. Not given: a new server follows the deployment's
    #: CALLBACK_SIGNATURE, an existing one keeps its own (``extra={"callbackSignature":
    #: None}`` puts it back to the deployment's).
    callback_signature: Literal["required", "optional"]
    extra: Mapping[str, Any]


class HeartbeatLoad(TypedDict, total=False):
    """What a heartbeat may report."""

    in_flight: int
    queue_depth: int
    gpu_utilization: float


#: snake_case argument -> the API's camelCase field.
SUBMIT_KEYS = {
    "capabilities": "capabilities",
    "priority": "priority",
    "mode": "mode",
    "timeout": "timeout",
    "max_retries": "maxRetries",
    "region": "region",
    "group": "group",
    "poll_interval": "pollInterval",
    "poll_max_attempts": "pollMaxAttempts",
    "run_at": "runAt",
    "delay": "delay",
    "depends_on": "dependsOn",
    "stream": "stream",
}
SERVER_KEYS = {
    "id": "id",
    "api_key": "apiKey",
    "max_concurrent": "maxConcurrent",
    "capabilities": "capabilities",
    "groups": "groups",
    "priority": "priority",
    "region": "region",
    "weight": "weight",
    "timeout_seconds": "timeoutSeconds",
    "batch": "batch",
    "callback_signature": "callbackSignature",
}
HEARTBEAT_KEYS = {"in_flight": "inFlight", "queue_depth": "queueDepth", "gpu_utilization": "gpuUtilization"}


def camel(fields: Mapping[str, Any], keys: Mapping[str, str], what: str) -> dict[str, Any]:
    """``fields`` renamed to the API's names; None values left out; an unknown name is
    a TypeError, as for any keyword argument."""
    unknown = sorted(set(fields) - set(keys) - {"extra"})
    if unknown:
        raise TypeError(f"unknown {what} field(s): {', '.join(unknown)}")
    body = {keys[name]: _json(value) for name, value in fields.items() if name in keys and value is not None}
    body.update(fields.get("extra") or {})
    return body


def _json(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _id(value: str) -> str:
    return quote(str(value), safe="")


def _query(**values: Any) -> dict[str, str | int]:
    return {key: value for key, value in values.items() if value is not None}


def _time(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def aware_time(value: datetime | str, name: str = "run_at") -> str:
    """``value`` as ISO 8601 text, refused (ValueError) unless it names its timezone."""
    if isinstance(value, datetime):
        when, text = value, value.isoformat()
    else:
        try:
            when, text = datetime.fromisoformat(value), value
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be an ISO 8601 time with a timezone, not {value!r}") from exc
    if when.utcoffset() is None:
        raise ValueError(
            f"{name} must have a timezone (e.g. datetime.now(UTC) or "
            f"'2030-01-01T09:00:00+00:00'), not the naive {value!r}"
        )
    return text


def _task_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Task fields in the API's names."""
    if fields.get("run_at") is not None:
        fields = {**fields, "run_at": aware_time(fields["run_at"])}
    return camel(fields, SUBMIT_KEYS, "task")


def job_task(
    type: str, payload: Any = None, *, key: str | None = None, **fields: Unpack[TaskFields]
) -> dict[str, Any]:
    """One item of ``submit_job(tasks=...)`` in the API's JSON: the fields of ``submit``
    (no idempotency key), plus ``key``, unique within the job, which its siblings may
    name in ``depends_on``."""
    body = {"type": type, "payload": payload, **_task_fields(fields)}
    return body if key is None else {**body, "key": key}


def job_template(type: str, **fields: Unpack[TaskFields]) -> dict[str, Any]:
    """The ``template`` of a fan-out job in the API's JSON: a task without its payload
    (each of ``items`` is one task's payload)."""
    return {"type": type, **_task_fields(fields)}


# Tasks


def submit(type: str, payload: Any, fields: Mapping[str, Any]) -> Call[Task]:
    fields = dict(fields)
    key = fields.pop("idempotency_key", None) or str(uuid.uuid4())
    body = {"type": type, "payload": payload, **_task_fields(fields)}
    return Call("POST", "/task", Task, json=body, headers={"Idempotency-Key": key})


def get_task(task_id: str) -> Call[Task]:
    return Call("GET", f"/task/{_id(task_id)}", Task)


def list_tasks(status: str | None, type: str | None, limit: int | None, cursor: str | None) -> Call[TaskPage]:
    params = _query(status=status, type=type, limit=limit, cursor=cursor)
    return Call("GET", "/tasks", TaskPage.from_json, params=params)


def cancel_task(task_id: str) -> Call[Task]:
    # Not idempotent: a second cancel of a cancelled task is a 409.
    return Call("POST", f"/task/{_id(task_id)}/cancel", Task, idempotent=False)


def retry_task(task_id: str) -> Call[Task]:
    return Call("POST", f"/task/{_id(task_id)}/retry", Task, idempotent=False)


def _attempts(body: Mapping[str, Any]) -> list[Attempt]:
    return [Attempt(item) for item in body.get("items", [])]


def task_attempts(task_id: str) -> Call[list[Attempt]]:
    return Call("GET", f"/task/{_id(task_id)}/attempts", _attempts)


# Jobs


def submit_job(
    tasks: Sequence[Mapping[str, Any]] | None,
    template: Mapping[str, Any] | None,
    items: Sequence[Any] | None,
    name: str | None,
    idempotency_key: str | None,
) -> Call[Job]:
    if tasks is not None and (template is not None or items is not None):
        raise ValueError("give tasks, or template and items, not both")
    if tasks is None and (template is None or items is None):
        raise ValueError("give tasks, or both template and items")
    body: dict[str, Any] = {} if name is None else {"name": name}
    if tasks is not None:
        body["tasks"] = [dict(task) for task in tasks]
    else:
        body["template"], body["items"] = dict(template or {}), list(items or ())
    key = idempotency_key or str(uuid.uuid4())
    return Call("POST", "/jobs", Job, json=body, headers={"Idempotency-Key": key})


def get_job(job_id: str) -> Call[Job]:
    return Call("GET", f"/jobs/{_id(job_id)}", Job)


def list_jobs(limit: int | None, cursor: str | None) -> Call[JobPage]:
    return Call("GET", "/jobs", JobPage.from_json, params=_query(limit=limit, cursor=cursor))


def job_tasks(job_id: str, status: str | None, limit: int | None, cursor: str | None) -> Call[TaskPage]:
    params = _query(status=status, limit=limit, cursor=cursor)
    return Call("GET", f"/jobs/{_id(job_id)}/tasks", TaskPage.from_json, params=params)


def cancel_job(job_id: str) -> Call[Job]:
    # Idempotent, unlike a task's: cancelling a job again finishes what a first call cut short.
    return Call("POST", f"/jobs/{_id(job_id)}/cancel", Job)


# Servers (admin)


def _servers(body: Mapping[str, Any]) -> list[Server]:
    return [Server(item) for item in body.get("items", [])]


def list_servers(status: str | None, group: str | None, capability: str | None) -> Call[list[Server]]:
    return Call("GET", "/servers", _servers, params=_query(status=status, group=group, capability=capability))


def get_server(server_id: str) -> Call[Server]:
    return Call("GET", f"/servers/{_id(server_id)}", Server)


def register_server(name: str, endpoints: Mapping[str, str], fields: Mapping[str, Any]) -> Call[Server]:
    body = {"name": name, "endpoints": dict(endpoints), **camel(fields, SERVER_KEYS, "server")}
    # The same id again updates the server; without an id each call registers a new one.
    return Call("POST", "/servers", Server, json=body, idempotent="id" in body)


def remove_server(server_id: str) -> Call[Server]:
    return Call("DELETE", f"/servers/{_id(server_id)}", Server)


def set_maintenance(server_id: str, enabled: bool) -> Call[Server]:
    return Call("PUT", f"/servers/{_id(server_id)}/maintenance", Server, json={"enabled": enabled})


def heartbeat(server_id: str, load: Mapping[str, Any]) -> Call[Server]:
    body = camel(load, HEARTBEAT_KEYS, "heartbeat")
    return Call("POST", f"/servers/{_id(server_id)}/heartbeat", Server, json=body)


# Statistics and the balancer (admin)


def stats(start: datetime | str | None, end: datetime | str | None) -> Call[Stats]:
    return Call("GET", "/stats", Stats, params=_query(**{"from": _time(start), "to": _time(end)}))


def _hours(body: Mapping[str, Any]) -> list[Hour]:
    return [Hour(item) for item in body.get("hours", [])]


def hourly() -> Call[list[Hour]]:
    return Call("GET", "/stats/hourly", _hours)


def server_stats(server_id: str) -> Call[ServerStats]:
    return Call("GET", f"/stats/servers/{_id(server_id)}", ServerStats)


def _errors(body: Mapping[str, Any]) -> list[ErrorEntry]:
    return [ErrorEntry(item) for item in body.get("errors", [])]


def errors(type: str | None, limit: int | None) -> Call[list[ErrorEntry]]:
    return Call("GET", "/errors", _errors, params=_query(type=type, limit=limit))


def get_algorithm() -> Call[Algorithm]:
    return Call("GET", "/loadbalancer/algorithm", Algorithm)


def set_algorithm(name: str) -> Call[Algorithm]:
    return Call("PUT", "/loadbalancer/algorithm", Algorithm, json={"algorithm": name})


# Concurrency limits (admin)


def _limits(body: Any) -> list[Limit]:
    found = body.get("items", []) if isinstance(body, Mapping) else body
    return [Limit(item) for item in found or ()]


def list_limits() -> Call[list[Limit]]:
    return Call("GET", "/limits", _limits)


def get_limit(type: str) -> Call[Limit]:
    return Call("GET", f"/limits/{_id(type)}", Limit)


def set_limit(type: str, max_concurrent: int | None, dynamic: Mapping[str, int] | None) -> Call[Limit]:
    if (max_concurrent is None) == (dynamic is None):
        raise ValueError("give exactly one of max_concurrent and dynamic")
    body = {"maxConcurrent": max_concurrent} if dynamic is None else {"dynamic": dict(dynamic)}
    return Call("PUT", f"/limits/{_id(type)}", Limit, json=body)


def _nothing(body: Any) -> None:
    return None


def remove_limit(type: str) -> Call[None]:
    return Call("DELETE", f"/limits/{_id(type)}", _nothing)


# Token revocation (admin)


def revoke_token(jti: str, sub: str | None, expires_at: datetime | str | None) -> Call[Revocation]:
    body: dict[str, Any] = {"jti": jti}
    if sub is not None:
        body["sub"] = sub
    if expires_at is not None:
        body["expiresAt"] = aware_time(expires_at, "expires_at")
    return Call("POST", "/tokens/revoke", Revocation, json=body)


def revoke_subject(sub: str, issued_before: datetime | str | None) -> Call[Revocation]:
    body: dict[str, Any] = {"sub": sub}
    if issued_before is not None:
        body["issuedBefore"] = aware_time(issued_before, "issued_before")
    return Call("POST", "/tokens/revoke", Revocation, json=body)


def revocations() -> Call[Revocations]:
    return Call("GET", "/tokens/revocations", Revocations)
