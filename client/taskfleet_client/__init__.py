"""A Python client for the taskfleet REST API: ``Client`` (sync) and ``AsyncClient``.

>>> from taskfleet_client import Client
>>> with Client("http://127.0.0.1:8000", token) as tf:          # doctest: +SKIP
...     task = tf.submit("echo", {"hello": "fleet"}, capabilities=["echo"])
...     print(tf.wait(task.id, timeout=60).result)
...     job = tf.submit_job(template=job_template("echo"), items=[{"i": 1}, {"i": 2}])
...     print(tf.wait_job(job.id, timeout=60).counts)
"""

from __future__ import annotations

from taskfleet_client._version import __version__
from taskfleet_client.async_client import AsyncClient
from taskfleet_client.calls import (
    Call,
    HeartbeatLoad,
    ServerFields,
    SubmitFields,
    TaskFields,
    job_task,
    job_template,
)
from taskfleet_client.client import Client
from taskfleet_client.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NoEventStream,
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
from taskfleet_client.events import Event, Reconnect
from taskfleet_client.job_models import Job, JobPage
from taskfleet_client.limit_models import DynamicLimit, Limit, LimitChange
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
from taskfleet_client.token_models import Revocation, Revocations, RevokedToken, SubjectCutoff
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
    "DynamicLimit",
    "ErrorEntry",
    "Event",
    "Forbidden",
    "HeartbeatLoad",
    "Hour",
    "Job",
    "JobPage",
    "Limit",
    "LimitChange",
    "NoEventStream",
    "NotFound",
    "PayloadTooLarge",
    "Reconnect",
    "RetryPolicy",
    "RetryableError",
    "Revocation",
    "Revocations",
    "RevokedToken",
    "Server",
    "ServerError",
    "ServerFields",
    "ServerMetrics",
    "ServerStats",
    "Stats",
    "SubjectCutoff",
    "SubmitFields",
    "Task",
    "TaskFields",
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
    "job_task",
    "job_template",
]
