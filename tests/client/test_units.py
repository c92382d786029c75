"""The client's pure parts: typed objects, field names, the API root, retry and polling
rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from taskfleet_client import (
    Backoff,
    BadRequest,
    Conflict,
    DynamicLimit,
    Forbidden,
    Job,
    JobPage,
    Limit,
    NotFound,
    PayloadTooLarge,
    RetryPolicy,
    Server,
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
    job_task,
    job_template,
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


def test_run_at_is_sent_as_iso_text_and_a_naive_time_is_refused():
    aware = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert calls.submit("x", None, {"run_at": aware}).json["runAt"] == "2030-01-02T03:04:05+02:00"
    assert calls.submit("x", None, {"run_at": "2030-01-02T03:04:05Z"}).json["runAt"] == "2030-01-02T03:04:05Z"
    body = calls.submit("x", None, {"delay": 2.5, "depends_on": ("a", "b")}).json
    assert (body["delay"], body["dependsOn"]) == (2.5, ["a", "b"]) and "runAt" not in body
    with pytest.raises(ValueError, match="run_at must have a timezone"):
        calls.submit("x", None, {"run_at": datetime(2030, 1, 2)})
    with pytest.raises(ValueError, match="run_at must have a timezone"):
        calls.submit("x", None, {"run_at": "2030-01-02T03:04:05"})
    with pytest.raises(ValueError, match="ISO 8601"):
        calls.submit("x", None, {"run_at": "tomorrow"})


def test_job_bodies_are_built_from_snake_case_fields():
    first = job_task("echo", {"i": 1}, key="a", capabilities=["echo"], max_retries=0)
    assert first == {
        "type": "echo",
        "payload": {"i": 1},
        "capabilities": ["echo"],
        "maxRetries": 0,
        "key": "a",
    }
    assert job_task("echo", depends_on=["a"]) == {"type": "echo", "payload": None, "dependsOn": ["a"]}
    assert job_template("echo", priority=9) == {"type": "echo", "priority": 9}
    with pytest.raises(TypeError, match="unknown task field"):
        job_task("echo", idempotency_key="k")  # type: ignore[call-arg]

    listed = calls.submit_job([first], None, None, "batch", None)
    assert (listed.method, listed.path, listed.json) == ("POST", "/jobs", {"name": "batch", "tasks": [first]})
    assert listed.headers["Idempotency-Key"] and listed.idempotent
    fanned = calls.submit_job(None, job_template("echo"), ({"i": 1}, None), None, "k1")
    assert fanned.json == {"template": {"type": "echo"}, "items": [{"i": 1}, None]}
    assert fanned.headers == {"Idempotency-Key": "k1"}
    with pytest.raises(ValueError, match="not both"):
        calls.submit_job([first], {"type": "echo"}, [1], None, None)
    with pytest.raises(ValueError, match="both template and items"):
        calls.submit_job(None, {"type": "echo"}, None, None, None)


def test_job_calls_name_their_paths_and_a_job_cancel_may_be_sent_twice():
    assert calls.get_job("a/b").path == "/jobs/a%2Fb"
    assert calls.list_jobs(5, None).params == {"limit": 5}
    assert calls.job_tasks("j", "FAILED", 1000, "c").params == {
        "status": "FAILED",
        "limit": 1000,
        "cursor": "c",
    }
    assert calls.job_tasks("j", None, None, None).path == "/jobs/j/tasks"
    assert calls.cancel_job("j").idempotent and calls.cancel_job("j").method == "POST"


def test_a_job_reads_its_counts_and_progress_and_tolerates_new_fields():
    raw = {
        "id": "j1",
        "name": None,
        "status": "RUNNING",
        "total": 4,
        "taskIds": ["a", "b", "c", "d"],
        "counts": {"COMPLETED": 1, "FAILED": 1, "PROCESSING": 1, "WAITING": 1},
        "progress": 50,
        "createdAt": "2025-01-02T03:04:05Z",
        "finishedAt": None,
        "someday": {"x": 1},
    }
    job = Job(raw)
    assert (job.id, job.name, job.total, job.progress, job.finished) == ("j1", None, 4, 50, 2)
    assert job.task_ids == ["a", "b", "c", "d"] and job.counts["WAITING"] == 1
    assert job.created_at == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC) and job.finished_at is None
    assert not job.done and not job.ok and job["someday"] == {"x": 1}
    assert Job({**raw, "status": "FAILED"}).done and Job({**raw, "status": "COMPLETED"}).ok
    assert Job({"id": "j2"}).counts == {} and Job({"id": "j2"}).task_ids == []
    page = JobPage.from_json({"items": [raw], "nextCursor": None})
    assert page.jobs == [job] and page.next_cursor is None


def test_a_limit_reads_static_or_scaling_and_set_limit_sends_exactly_one():
    scaling = Limit(
        {
            "type": "chat",
            "dynamic": {"initial": 10, "max": 50, "step": 5, "upEverySeconds": 60, "downEverySeconds": 180},
            "current": 15,
            "inFlight": 12,
            "waiting": 40,
            "lastChange": {"at": "2025-01-02T03:04:05+00:00", "from": 10, "to": 15, "reason": "backlog"},
            "unknown": True,
        }
    )
    assert scaling.max_concurrent is None and scaling.dynamic == DynamicLimit.of(10, 50, 5, 60, 180)
    assert scaling.dynamic is not None and scaling.dynamic.up_every_seconds == 60
    assert (scaling.current, scaling.in_flight, scaling.waiting) == (15, 12, 40)
    assert scaling.last_change is not None and (scaling.last_change.previous, scaling.last_change.to) == (
        10,
        15,
    )
    static = Limit({"type": "*", "maxConcurrent": 2, "current": 2})
    assert static.max_concurrent == 2 and static.dynamic is None and static.last_change is None

    assert calls.set_limit("*", 2, None).json == {"maxConcurrent": 2}
    assert calls.set_limit("*", 2, None).path == "/limits/%2A"
    assert calls.set_limit("a", None, DynamicLimit.of(1, 2, 1, 3, 4)).json == {
        "dynamic": {"initial": 1, "max": 2, "step": 1, "upEverySeconds": 3, "downEverySeconds": 4}
    }
    for wrong in ((None, None), (2, DynamicLimit.of(1, 2, 1, 3, 4))):
        with pytest.raises(ValueError, match="exactly one"):
            calls.set_limit("a", *wrong)
    assert calls.remove_limit("a").method == "DELETE" and calls.remove_limit("a").parse(None) is None
    assert [x.type for x in calls.list_limits().parse({"items": [static.raw]})] == ["*"]
    assert [x.type for x in calls.list_limits().parse([static.raw])] == ["*"]


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


def test_polling_a_job_stops_once_it_no_longer_runs_and_names_the_job_at_the_deadline():
    clock = FakeTime()
    states = iter([("RUNNING", 0), ("RUNNING", 50), ("RUNNING", 50), ("FAILED", 100)])

    def fetch() -> Job:
        status, progress = next(states)
        return Job({"id": "j", "status": status, "progress": progress})

    seen = [(j.status, j.progress) for j in poll(fetch, "j", None, Backoff(), clock.sleep, lambda: clock.now)]
    assert seen == [("RUNNING", 0), ("RUNNING", 50), ("FAILED", 100)]
    with pytest.raises(WaitTimeout) as caught:
        list(
            poll(
                lambda: Job({"status": "RUNNING"}),
                "j",
                1.0,
                Backoff(),
                clock.sleep,
                lambda: clock.now,
                kind="job",
            )
        )
    assert str(caught.value) == "job j is still RUNNING after 1 s" and isinstance(caught.value.task, Job)


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


def test_a_server_registration_can_demand_signed_callbacks_or_return_to_the_default():
    demand = calls.register_server("n", {}, {"id": "s", "callback_signature": "required"})
    assert demand.json == {"name": "n", "endpoints": {}, "id": "s", "callbackSignature": "required"}
    reset = calls.register_server("n", {}, {"extra": {"callbackSignature": None}})
    assert reset.json["callbackSignature"] is None
    assert "callbackSignature" not in calls.register_server("n", {}, {}).json
    assert Server({"callbackSignature": "required"}).callback_signature == "required"
    assert Server({}).callback_signature is None
