"""``taskfleet submit`` and ``taskfleet tasks`` on the real stack, as a subprocess."""

from __future__ import annotations

import json
import uuid


def ok(process):
    assert process.returncode == 0, (process.stdout, process.stderr)
    assert "Traceback" not in process.stderr
    return process.stdout


def test_submit_prints_the_id_and_show_prints_the_task(taskfleet):
    task_id = ok(
        taskfleet("submit", "echo", "--payload", '{"a": 1}', "--cap", "echo", "--priority", "7")
    ).strip()
    shown = json.loads(ok(taskfleet("tasks", "show", task_id)))
    assert shown["id"] == task_id and shown["payload"] == {"a": 1} and shown["priority"] == 7


def test_submit_wait_reports_each_change_then_prints_the_result(taskfleet, tmp_path):
    payload = tmp_path / "payload.json"
    payload.write_text('{"from": "a file"}')
    done = taskfleet(
        "submit", "echo", "--payload", f"@{payload}", "--cap", "echo", "--mode", "callback", "--wait"
    )
    assert json.loads(ok(done)) == {"echo": {"from": "a file"}, "server": "fleet-backend"}
    lines = done.stderr.splitlines()
    task_id = lines[0].split()[1]
    assert lines[0] == f"task {task_id} submitted"
    assert lines[-1] == f"task {task_id[:8]}: COMPLETED"
    assert all(line.startswith(f"task {task_id[:8]}: ") for line in lines[1:])

    from_stdin = taskfleet("submit", "echo", "--payload", "@-", "--cap", "echo", "--wait", input="[1, 2]")
    assert json.loads(ok(from_stdin)) == {"echo": [1, 2], "server": "fleet-backend"}


def test_a_task_that_fails_ends_submit_wait_with_its_error_and_exit_1(taskfleet):
    failed = taskfleet(
        "submit", "echo", "--payload", '{"fail": 500}', "--cap", "echo", "--max-retries", "0", "--wait"
    )
    assert failed.returncode == 1 and failed.stdout == "" and "Traceback" not in failed.stderr
    task_id = failed.stderr.splitlines()[0].split()[1]
    assert failed.stderr.splitlines()[-1].startswith(f"error: task {task_id} ended FAILED: ")
    retried = taskfleet("tasks", "retry", task_id)
    assert ok(retried).split()[0] == task_id


def test_waiting_gives_up_at_its_timeout_and_says_how_to_go_on(taskfleet):
    task_id = ok(taskfleet("submit", "echo", "--cap", "nowhere")).strip()
    waited = taskfleet("tasks", "wait", task_id, "--timeout", "0.5")
    assert waited.returncode == 1
    assert waited.stderr.splitlines()[-1] == (
        f"error: task {task_id} is still PENDING after 0.5 s; it goes on (taskfleet tasks wait {task_id})"
    )
    ok(taskfleet("tasks", "cancel", task_id))


def test_tasks_ls_shows_a_table_json_and_every_page(taskfleet):
    kind = f"ls-{uuid.uuid4().hex[:8]}"
    ids = [ok(taskfleet("submit", kind, "--cap", "nowhere")).strip() for _ in range(3)]
    table = taskfleet("tasks", "ls", "--type", kind)
    lines = ok(table).splitlines()
    assert lines[0].split() == ["ID", "TYPE", "STATUS", "PROGRESS", "SERVER", "CREATED", "(UTC)"]
    assert [line.split()[:3] for line in lines[1:]] == [[i, kind, "PENDING"] for i in reversed(ids)]
    assert [t["id"] for t in json.loads(ok(taskfleet("tasks", "ls", "--type", kind, "--json")))] == ids[::-1]
    first = taskfleet("tasks", "ls", "--type", kind, "--limit", "2", "--json")
    assert len(json.loads(ok(first))) == 2 and "more: --all" in first.stderr
    every = taskfleet("tasks", "ls", "--type", kind, "--limit", "2", "--all", "--json")
    assert [t["id"] for t in json.loads(ok(every))] == ids[::-1]
    assert json.loads(ok(taskfleet("tasks", "ls", "--type", kind, "--status", "COMPLETED", "--json"))) == []

    cancelled = taskfleet("tasks", "cancel", *ids)
    assert ok(cancelled).splitlines() == [f"{i} CANCELLED" for i in ids]


def test_cancel_reports_each_task_and_fails_if_any_failed(taskfleet):
    task_id = ok(taskfleet("submit", "echo", "--cap", "nowhere")).strip()
    both = taskfleet("tasks", "cancel", task_id, "no-such-task")
    assert both.returncode == 1
    assert both.stdout == f"{task_id} CANCELLED\n"
    assert both.stderr == "error: task no-such-task not found (404)\n"
    again = taskfleet("tasks", "cancel", task_id)
    assert (
        again.returncode == 1
        and again.stderr.startswith(f"error: task {task_id} ")
        and "(409)" in again.stderr
    )


def test_tasks_attempts_lists_each_attempt_as_a_table_and_as_json(taskfleet):
    task_id = ok(taskfleet("submit", "echo", "--payload", '{"n": 1}', "--cap", "echo")).strip()
    ok(taskfleet("tasks", "wait", task_id))
    table = ok(taskfleet("tasks", "attempts", task_id))
    assert table.splitlines()[0].split()[:5] == ["#", "SERVER", "STARTED", "(UTC)", "ENDED"]
    assert "COMPLETED" in table
    items = json.loads(ok(taskfleet("tasks", "attempts", task_id, "--json")))
    assert [(a["attempt"], a["outcome"]) for a in items] == [(1, "COMPLETED")]


def test_a_run_at_without_a_timezone_is_refused_before_anything_is_sent(taskfleet):
    naive = taskfleet("submit", "echo", "--run-at", "2030-01-01T09:00:00")
    assert naive.returncode == 2 and "Traceback" not in naive.stderr
    assert "--run-at must have a timezone" in naive.stderr
    garbled = taskfleet("submit", "echo", "--run-at", "tomorrow")
    assert garbled.returncode == 2 and "--run-at must be an ISO 8601 time with a timezone" in garbled.stderr
