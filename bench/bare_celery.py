"""The baseline: a hand-rolled Celery dispatcher with nothing but Celery.

Same Redis server as taskfleet (its own database number, so neither sees the other's
keys), the prefork pool, a Redis result backend, and one task that POSTs the task to
the same benchmark backend taskfleet calls and returns its JSON answer. No records,
no slot accounting, no retries, no timeouts beyond the HTTP one: this is the
"hand-rolled Celery code" taskfleet has to be at least as fast as.

  BENCH_CELERY_URL=redis://127.0.0.1:6379/1 celery -A bench.bare_celery worker \\
      --pool prefork --concurrency 2 --queues bare

One ``requests.Session`` per process keeps connections alive, as taskfleet's backend
client does; a fresh connection per call would make the baseline slower than a
competent hand-rolled version.
"""

from __future__ import annotations

import os
from typing import Any

import requests
from celery import Celery

QUEUE = "bare"
TASK = "bare.post"

app = Celery("bare")
app.conf.update(
    broker_url=os.environ.get("BENCH_CELERY_URL", "redis://127.0.0.1:6379/1"),
    result_backend=os.environ.get("BENCH_CELERY_URL", "redis://127.0.0.1:6379/1"),
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

_session: requests.Session | None = None


def session() -> requests.Session:
    global _session
    if _session is None or _session_pid != os.getpid():
        _reset()
    assert _session is not None
    return _session


_session_pid = -1


def _reset() -> None:
    global _session, _session_pid
    _session = requests.Session()
    _session_pid = os.getpid()


@app.task(name=TASK)
def post(url: str, body: dict[str, Any]) -> Any:
    response = session().post(url, json=body, timeout=(5, 30))
    response.raise_for_status()
    return response.json()
