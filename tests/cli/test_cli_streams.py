"""``taskfleet submit --stream --wait``, ``tasks wait`` and ``tasks events`` on the real
stack: streamed output on stdout as it comes, statuses on stderr."""

from __future__ import annotations

import io
import json

from taskfleet_client import Event

from app.remote_cli import render

TOKENS = ["The", " quick", " brown", " fox"]


def ok(process):
    assert process.returncode == 0, (process.stdout, process.stderr)
    assert "Traceback" not in process.stderr
    return process.stdout


def test_submit_stream_wait_prints_the_chunks_then_the_result(taskfleet):
    payload = json.dumps({"tokens": TOKENS})
    done = taskfleet("submit", "echo", "--payload", payload, "--cap", "echo", "--stream", "--wait")
    first, _, rest = ok(done).partition("\n")
    assert first == "".join(TOKENS)
    result = json.loads(rest)
    assert result["text"] == "".join(TOKENS) and result["server"] == "fleet-backend"
    lines = done.stderr.splitlines()
    task_id = lines[0].split()[1]
    assert lines[-1] == f"task {task_id[:8]}: COMPLETED"
    assert f"task {task_id[:8]}: PROCESSING 0%" in lines

    shown = json.loads(ok(taskfleet("tasks", "show", task_id)))
    assert shown["stream"] is True
    again = ok(taskfleet("tasks", "wait", task_id))  # a finished task: its result at once
    assert json.loads(again)["text"] == "".join(TOKENS)


def test_tasks_events_prints_each_event_as_a_json_line_and_resumes_after_an_id(taskfleet):
    payload = json.dumps({"tokens": ["a", "b", "c"]})
    task_id = ok(taskfleet("submit", "echo", "--payload", payload, "--cap", "echo", "--stream")).strip()
    events = [json.loads(line) for line in ok(taskfleet("tasks", "events", task_id)).splitlines()]
    assert [e["data"]["data"] for e in events if e["event"] == "chunk"] == ["a", "b", "c"]
    assert events[-1]["event"] == "result" and events[-1]["data"]["status"] == "COMPLETED"
    rest = [
        json.loads(line)
        for line in ok(taskfleet("tasks", "events", task_id, "--after", events[1]["id"])).splitlines()
    ]
    assert rest == events[2:]


def test_a_task_without_stream_is_waited_for_as_before(taskfleet):
    done = taskfleet("submit", "echo", "--payload", '{"plain": 1}', "--cap", "echo", "--wait")
    assert json.loads(ok(done)) == {"echo": {"plain": 1}, "server": "fleet-backend"}


def test_another_owners_events_are_an_error_not_a_traceback(taskfleet, fleet):
    task_id = ok(taskfleet("submit", "echo", "--cap", "echo", token=fleet.alice)).strip()
    other = taskfleet("tasks", "events", task_id, token=fleet.bob)
    assert other.returncode != 0 and "Traceback" not in other.stderr
    assert "no event stream" in other.stderr


def test_chunks_are_written_as_text_as_they_are_and_other_json_a_line_each():
    out = io.StringIO()
    writer = render.ChunkWriter(out)
    for data in ["Hel", "lo", {"token": 1}, "end"]:
        writer.write(Event("2-1", "chunk", {"data": data}))
    writer.end()
    writer.end()  # a closed line is not closed twice
    assert out.getvalue() == 'Hello{"token": 1}\nend\n'
