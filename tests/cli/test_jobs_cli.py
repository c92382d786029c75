"""``taskfleet jobs`` on the real stack, as a subprocess."""

from __future__ import annotations

import json

from tests.cli.test_tasks_cli import ok


def lines_of(*bodies):
    return "".join(json.dumps(body) + "\n" for body in bodies)


def test_a_job_from_json_lines_on_stdin_is_followed_to_completed(taskfleet):
    tasks = lines_of(
        {"type": "echo", "payload": {"n": 1}, "capabilities": ["echo"], "key": "first"},
        {"type": "echo", "payload": {"n": 2}, "capabilities": ["echo"]},
    )
    done = taskfleet("jobs", "submit", "-", "--name", "from-stdin", "--wait", input="\n" + tasks)
    job_id = ok(done).strip()
    lines = done.stderr.splitlines()
    assert lines[0] == f"job {job_id} submitted: 2 tasks"
    assert lines[-1] == f"job {job_id[:8]}: COMPLETED 100% (2/2: COMPLETED 2)"
    assert all(line.startswith(f"job {job_id[:8]}: ") for line in lines[1:])

    shown = ok(taskfleet("jobs", "show", job_id)).splitlines()
    assert shown[:5] == [
        f"job       {job_id}",
        "name      from-stdin",
        "status    COMPLETED",
        "progress  100% (2 of 2 tasks finished)",
        "tasks     COMPLETED 2",
    ]
    raw = json.loads(ok(taskfleet("jobs", "show", job_id, "--json")))
    assert raw["id"] == job_id and len(raw["taskIds"]) == 2 and raw["counts"] == {"COMPLETED": 2}

    table = ok(taskfleet("jobs", "tasks", job_id)).splitlines()
    assert table[0].split()[:4] == ["ID", "KEY", "TYPE", "STATUS"]
    assert [row.split()[1:4] for row in table[1:]] == [
        ["first", "echo", "COMPLETED"],
        ["echo", "COMPLETED", "echo-1"],
    ]
    listed = json.loads(ok(taskfleet("jobs", "tasks", job_id, "--json")))
    assert [t["id"] for t in listed] == raw["taskIds"] and [t["payload"]["n"] for t in listed] == [1, 2]


def test_a_fan_out_job_with_a_failing_item_ends_wait_with_exit_1(taskfleet, tmp_path):
    body = tmp_path / "job.json"
    body.write_text(
        json.dumps(
            {
                "name": "in-the-file",
                "template": {"type": "echo", "capabilities": ["echo"], "maxRetries": 0},
                "items": [{"n": 1}, {"fail": 500}],
            }
        )
    )
    failed = taskfleet("jobs", "submit", str(body), "--wait")
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    job_id = failed.stdout.strip()
    assert failed.stderr.splitlines()[-1] == f"error: job {job_id} ended FAILED: COMPLETED 1, FAILED 1"
    assert json.loads(ok(taskfleet("jobs", "show", job_id, "--json")))["name"] == "in-the-file"
    only_failed = json.loads(ok(taskfleet("jobs", "tasks", job_id, "--status", "FAILED", "--json")))
    assert [t["payload"] for t in only_failed] == [{"fail": 500}]
    plain = ok(taskfleet("jobs", "tasks", job_id)).splitlines()[0].split()
    assert plain[:3] == ["ID", "TYPE", "STATUS"]  # no KEY column when no task has a key


def test_jobs_are_listed_newest_first_and_cancelled_together(taskfleet, fleet, tmp_path):
    parked = tmp_path / "parked.json"
    parked.write_text(json.dumps([{"type": "echo", "capabilities": ["nowhere"]}] * 2))
    ids = [ok(taskfleet("jobs", "submit", str(parked), token=fleet.alice)).strip() for _ in range(2)]

    table = ok(taskfleet("jobs", "ls", token=fleet.alice)).splitlines()
    assert table[0].split() == ["ID", "NAME", "STATUS", "PROGRESS", "FINISHED", "CREATED", "(UTC)"]
    assert [row.split()[:4] for row in table[1:3]] == [[i, "RUNNING", "0%", "0/2"] for i in reversed(ids)]
    first = taskfleet("jobs", "ls", "--limit", "1", "--json", token=fleet.alice)
    assert [j["id"] for j in json.loads(ok(first))] == ids[-1:] and "more: --all" in first.stderr
    every = json.loads(ok(taskfleet("jobs", "ls", "--limit", "1", "--all", "--json", token=fleet.alice)))
    assert [j["id"] for j in every][:2] == ids[::-1]

    assert ok(taskfleet("jobs", "cancel", ids[0], token=fleet.alice)) == f"{ids[0]} CANCELLED (CANCELLED 2)\n"
    waited = taskfleet("jobs", "submit", str(parked), "--wait", "--wait-timeout", "0.5", token=fleet.alice)
    job_id = waited.stdout.strip()
    assert waited.returncode == 1 and waited.stderr.splitlines()[-1] == (
        f"error: job {job_id} is still RUNNING after 0.5 s; it goes on (taskfleet jobs show {job_id})"
    )
    for other in (ids[1], job_id):
        ok(taskfleet("jobs", "cancel", other, token=fleet.alice))
    unknown = taskfleet("jobs", "show", ids[0], token=fleet.bob)
    assert unknown.returncode == 1 and unknown.stderr.startswith("error: ") and "(404)" in unknown.stderr


def test_a_bad_job_file_is_refused_before_sending_and_a_bad_item_by_the_api(taskfleet, tmp_path):
    cases = {
        '{"tasks": [], "priority": 1}': "stdin: unknown field(s) priority",
        '{"type": "echo"}\nnot json\n': "stdin line 2 is not JSON",
        "": "stdin holds no task",
        '{"tasks": [1]}': "stdin: tasks must be task bodies",
        '{"template": {"type": "echo"}}': "give tasks, or both template and items",
    }
    for text, message in cases.items():
        refused = taskfleet("jobs", "submit", "-", input=text)
        assert refused.returncode == 2 and message in refused.stderr, (text, refused.stderr)
    missing = taskfleet("jobs", "submit", str(tmp_path / "nowhere.jsonl"))
    assert missing.returncode == 2 and "nowhere.jsonl" in missing.stderr

    bad_item = lines_of({"type": "echo"}, {"type": "echo", "priority": 99})
    refused = taskfleet("jobs", "submit", "-", input=bad_item)
    assert refused.returncode == 1 and refused.stderr.startswith("error: ") and "(422)" in refused.stderr
    assert "Traceback" not in refused.stderr
