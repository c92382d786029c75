"""The client's pure parts: typed objects, field names, the API root, retry and polling
rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from taskfleet_client import (
    Backoff,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RetryPolicy,
    ServerError,
    Stats,
    Task,
    TaskfleetError,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    Unprocessable,
    UnsupportedMediaType,
    WaitTimeout,
    calls,
)
from taskfleet_client._http import api_root
from taskfleet_client.errors import error_for
from taskfleet_client.retrying import retry_after_s
from taskfleet_client.waiting import poll

TASK = {
    "id": "t1",
    "type": "echo",
    "status": "PROCESSING",
    "progress": 40,
    "serverId": "gpu-1",
    "result": None,
    "createdAt": "2025-01-02T03:04:05.678Z",
    "finishedAt": None,
    "newField": [1],
}


def test_a_task_reads_as_typed_attributes_and_as_its_json():
    task = Task(TASK)
    assert (task.id, task.status, task.progress, task.server_id) == ("t1", "PROCESSING", 40, "gpu-1")
    assert task["serverId"] == "gpu-1" and task["newField"] == [1] and "newField" in task
    assert task.created_at == datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert task.finished_at is None and task.result is None and task.error is None
    assert task.capabilities == [] and task.done is False and task.ok is False
    assert dict(task) == TASK and json.loads(json.dumps(task.raw)) == TASK
    assert task == Task(dict(TASK)) and "PROCESSING" in repr(task)
    with pytest.raises(AttributeError):
        task.raw2 = 1  # type: ignore[attr-defined]


def test_stats_read_their_nested_lists_as_typed_objects():
    stats = Stats({"totalTasks": 3, "topServers": [{"serverId": "a", "successRate": 1}], "hourlyTrend": []})
    assert stats.total_tasks == 3 and stats.top_servers[0].server_id == "a"
    assert stats.top_servers[0].success_rate == 1.0 and stats.hourly_trend == []
    assert stats.average_processing_time is None


def test_submit_fields_are_sent_in_camel_case_with_an_idempotency_key():
    call = calls.submit("chat", {"p": 1}, {"max_retries": 2, "poll_interval": 5, "capabilities": ("llm",)})
    assert call.json == {
        "type": "chat",
        "payload": {"p": 1},
        "maxRetries": 2,
        "pollInterval": 5,
        "capabilities": ["llm"],
    }
    assert call.headers["Idempotency-Key"] and call.idempotent
    assert calls.submit("x", None, {"idempotency_key": "k"}).headers == {"Idempotency-Key": "k"}
    assert calls.submit("x", None, {"priority": None, "extra": {"dependsOn": ["a"]}}).json == {
        "type": "x",
        "payload": None,
        "dependsOn": ["a"],
    }
    with pytest.raises(TypeError, match="unknown task field"):
        calls.submit("x", None, {"maxRetries": 2})


def test_ids_are_quoted_into_paths_and_only_safe_calls_are_idempotent():
    assert calls.get_task("a/b c").path == "/task/a%2Fb%20c"
    assert not calls.cancel_task("t").idempotent and not calls.retry_task("t").idempotent
    assert calls.register_server("n", {}, {"id": "s"}).idempotent
    assert not calls.register_server("n", {}, {}).idempotent
    assert calls.heartbeat("s", {"in_flight": 2}).json == {"inFlight": 2}
    assert calls.stats(datetime(2025, 1, 1, tzinfo=UTC), None).params == {"from": "2025-01-01T00:00:00+00:00"}


@pytest.mark.parametrize(
    ("url", "root"),
    [
        ("http://h:8000", "http://h:8000/api/"),
        ("http://h:8000/", "http://h:8000/api/"),
        ("https://h/api", "https://h/api/"),
        ("https://h/prefix/", "https://h/prefix/api/"),
    ],
)
def test_the_api_root_is_found_from_the_server_url(url, root):
    assert api_root(url) == root


def test_a_url_without_a_scheme_is_refused():
    with pytest.raises(ValueError):
        api_root("127.0.0.1:8000")


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (413, PayloadTooLarge),
        (415, UnsupportedMediaType),
        (422, Unprocessable),
        (429, TooManyRequests),
        (503, Unavailable),
        (500, ServerError),
        (502, ServerError),
        (405, TaskfleetError),
    ],
)
def test_each_status_has_its_exception(status, cls):
    error = error_for(status, {"error": "e", "message": "m", "details": {"k": 1}}, "", 2.0)
    assert type(error) is cls and isinstance(error, TaskfleetError)
    assert (error.status, error.error, error.message, error.details, str(error)) == (
        status,
        "e",
        "m",
        {"k": 1},
        f"m ({status})",
    )


def test_retry_after_is_read_as_seconds_or_a_date_and_waits_are_capped():
    assert retry_after_s({"retry-after": "7"}) == 7.0
    assert retry_after_s({"retry-after": "Thu, 01 Jan 2026 00:00:10 GMT"}, now_s=1767225600.0) == 10.0
    assert retry_after_s({"retry-after": "soon"}) is None and retry_after_s({}) is None
    policy = RetryPolicy(backoff_s=0.5, max_wait_s=30)
    assert [policy.delay_s(n, None) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert policy.delay_s(1, 3600) == 30 and policy.delay_s(1, 2) == 2


def test_polling_grows_from_a_fifth_of_a_second_to_two_seconds():
    delays = Backoff().delays()
    assert [round(next(delays), 2) for _ in range(8)] == [0.2, 0.3, 0.45, 0.68, 1.01, 1.52, 2.0, 2.0]


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_poll_reports_changes_only_and_stops_at_the_final_state():
    states = iter([("PENDING", 0), ("PENDING", 0), ("PROCESSING", 50), ("PROCESSING", 50), ("COMPLETED", 99)])
    clock = FakeTime()

    def fetch() -> Task:
        status, progress = next(states)
        return Task({"id": "t", "status": status, "progress": progress})

    seen = [(t.status, t.progress) for t in poll(fetch, "t", None, Backoff(), clock.sleep, lambda: clock.now)]
    assert seen == [("PENDING", 0), ("PROCESSING", 50), ("COMPLETED", 99)]
    assert clock.now == pytest.approx(0.2 + 0.3 + 0.45 + 0.675)


def test_poll_raises_wait_timeout_at_the_deadline_without_sleeping_past_it():
    clock = FakeTime()

    def fetch() -> Task:
        return Task({"id": "t", "status": "PENDING"})

    with pytest.raises(WaitTimeout) as caught:
        list(poll(fetch, "t", 1.0, Backoff(), clock.sleep, lambda: clock.now))
    assert clock.now == pytest.approx(1.0) and caught.value.task.status == "PENDING"
    assert str(caught.value) == "task t is still PENDING after 1 s"


def test_the_client_package_imports_nothing_of_the_server():
    """It installs alone (httpx only): an import of app, workers or a server dependency
    would break ``pip install ./client``."""
    import ast
    from pathlib import Path

    import taskfleet_client

    allowed = {"taskfleet_client", "httpx", "__future__"}
    stdlib = {"asyncio", "builtins", "collections", "dataclasses", "datetime", "email", "functools"}
    stdlib |= {"json", "time", "types", "typing", "urllib", "uuid"}
    found = set()
    for path in Path(taskfleet_client.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    assert found - allowed <= stdlib, found - allowed - stdlib
