"""``taskfleet submit --run-at/--delay/--depends-on`` on the real stack, as a subprocess.
Needs the server side of runAt/delay/dependsOn."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.cli.test_tasks_cli import ok


def test_a_delayed_task_is_followed_from_scheduled_to_its_result(taskfleet):
    done = taskfleet("submit", "echo", "--payload", '{"later": 1}', "--cap", "echo", "--delay", "1", "--wait")
    assert json.loads(ok(done)) == {"echo": {"later": 1}, "server": "fleet-backend"}
    task_id = done.stderr.splitlines()[0].split()[1]
    assert done.stderr.splitlines()[1] == f"task {task_id[:8]}: SCHEDULED"
    assert json.loads(ok(taskfleet("tasks", "show", task_id)))["runAt"]


def test_a_task_at_a_later_time_is_scheduled_listed_and_cancelled(taskfleet):
    run_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    task_id = ok(taskfleet("submit", "echo", "--cap", "echo", "--run-at", run_at)).strip()
    shown = json.loads(ok(taskfleet("tasks", "show", task_id)))
    assert shown["status"] == "SCHEDULED"
    assert datetime.fromisoformat(shown["runAt"]) - datetime.fromisoformat(run_at) < timedelta(milliseconds=1)
    scheduled = json.loads(ok(taskfleet("tasks", "ls", "--status", "SCHEDULED", "--json")))
    assert task_id in {t["id"] for t in scheduled}
    assert ok(taskfleet("tasks", "cancel", task_id)) == f"{task_id} CANCELLED\n"

    both = taskfleet("submit", "echo", "--run-at", run_at, "--delay", "5")
    assert both.returncode == 1 and "(422)" in both.stderr and "Traceback" not in both.stderr


def test_a_task_depending_on_two_others_waits_for_both(taskfleet):
    first = ok(taskfleet("submit", "echo", "--payload", "1", "--cap", "echo")).strip()
    second = ok(taskfleet("submit", "echo", "--payload", "2", "--cap", "echo")).strip()
    done = taskfleet(
        "submit",
        "echo",
        "--payload",
        "3",
        "--cap",
        "echo",
        "--depends-on",
        first,
        "--depends-on",
        second,
        "--wait",
    )
    assert json.loads(ok(done))["echo"] == 3
    task_id = done.stderr.splitlines()[0].split()[1]
    shown = json.loads(ok(taskfleet("tasks", "show", task_id)))
    assert shown["dependsOn"] == [first, second]
    for dependency in (first, second):
        assert json.loads(ok(taskfleet("tasks", "show", dependency)))["status"] == "COMPLETED"

    unknown = taskfleet("submit", "echo", "--depends-on", "no-such-task")
    assert unknown.returncode == 1 and "(422)" in unknown.stderr
