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
from typing import Any, Generic, TypedDict, TypeVar
from urllib.parse import quote

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


class SubmitFields(TypedDict, total=False):
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
    #: Sent as the Idempotency-Key header; a random one when not given, so that a retried
    #: submit never creates a second task.
    idempotency_key: str
    #: Fields in the API's own camelCase, sent as they are (for fields newer than this client).
    extra: Mapping[str, Any]


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


# Tasks


def submit(type: str, payload: Any, fields: Mapping[str, Any]) -> Call[Task]:
    fields = dict(fields)
    key = fields.pop("idempotency_key", None) or str(uuid.uuid4())
    body = {"type": type, "payload": payload, **camel(fields, SUBMIT_KEYS, "task")}
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
