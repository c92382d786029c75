"""A Python client for the taskfleet REST API: ``Client`` (sync) and ``AsyncClient``.

>>> from taskfleet_client import Client
>>> with Client("http://127.0.0.1:8000", token) as tf:          # doctest: +SKIP
...     task = tf.submit("echo", {"hello": "fleet"}, capabilities=["echo"])
...     print(tf.wait(task.id, timeout=60).result)
"""

from __future__ import annotations

from taskfleet_client._version import __version__
from taskfleet_client.async_client import AsyncClient
from taskfleet_client.calls import Call, HeartbeatLoad, ServerFields, SubmitFields
from taskfleet_client.client import Client
from taskfleet_client.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RetryableError,
    ServerError,
    TaskfleetError,
    TooManyRequests,
    TransportError,
    Unauthorized,
    Unavailable,
    Unprocessable,
    UnsupportedMediaType,
    WaitTimeout,
)
from taskfleet_client.models import (
    FINAL_STATUSES,
    Algorithm,
    ApiObject,
    Attempt,
    ErrorEntry,
    Hour,
    Server,
    ServerMetrics,
    ServerStats,
    Stats,
    Task,
    TaskPage,
)
from taskfleet_client.retrying import RetryPolicy
from taskfleet_client.waiting import Backoff

__all__ = [
    "FINAL_STATUSES",
    "Algorithm",
    "ApiObject",
    "AsyncClient",
    "Backoff",
    "BadRequest",
    "Call",
    "Client",
    "Conflict",
    "Attempt",
    "ErrorEntry",
    "Forbidden",
    "HeartbeatLoad",
    "Hour",
    "NotFound",
    "PayloadTooLarge",
    "RetryPolicy",
    "RetryableError",
    "Server",
    "ServerError",
    "ServerFields",
    "ServerMetrics",
    "ServerStats",
    "Stats",
    "SubmitFields",
    "Task",
    "TaskPage",
    "TaskfleetError",
    "TooManyRequests",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "Unprocessable",
    "WaitTimeout",
    "__version__",
]
