"""Event streams on the Procfile's real stack (gunicorn's gevent workers, a gevent Celery
worker, beat, Redis, Postgres): streamed output reaching an SSE client as it is made,
resuming after a dropped connection, callback chunks, replays, owners, and a stream
that survives its task failing over to a second server."""

from __future__ import annotations

import threading
import time

import requests

from tests import sse_client
from tests.test_backends_stack import fleet, submit  # noqa: F401 - the fixture is used by name
from tests.test_stack import stack, wait_final  # noqa: F401


def _stream_url(api: str, task_id: str) -> str:
    return f"{api}/task/{task_id}/events"


def test_a_streaming_backends_chunks_reach_the_client_in_order_before_the_task_completes(fleet):  # noqa: F811
    api, _, client, add = fleet
    add("llm", delay_s=2.0)
    tokens = ["The", " quick", " brown", " fox"]
    task_id = submit(api, client, "llm", {"tokens": tokens}, stream=True)
    got = list(sse_client.events(_stream_url(api, task_id), client))
    names = [e.event for e in got]
    assert names[-1] == "result" and names.count("chunk") == 4
    chunks = [e for e in got if e.event == "chunk"]
    assert [e.data["data"] for e in chunks] == tokens
    done = next(e for e in got if e.event == "status" and e.data["status"] == "COMPLETED")
    assert all(e.at < done.at for e in chunks)
    assert done.at - chunks[0].at > 1.0, "the chunks came all at once, not as they were made"
    result = got[-1].data
    assert result["status"] == "COMPLETED" and result["stream"] is True
    assert result["result"]["text"] == "".join(tokens)
    assert result == requests.get(f"{api}/task/{task_id}", headers=client, timeout=5).json()
    ids = [e.id for e in got]
    assert len(set(ids)) == len(ids)


def test_last_event_id_after_a_dropped_connection_gets_exactly_the_missing_events(fleet):  # noqa: F811
    api, _, client, add = fleet
    add("llm2", delay_s=3.0)
    task_id = submit(api, client, "llm2", {"tokens": ["a", "b", "c", "d", "e", "f"]}, stream=True)
    first = []
    for event in sse_client.events(_stream_url(api, task_id), client):
        first.append(event)
        if event.event == "chunk" and event.data["data"] == "b":
            break  # the connection drops here
    rest = list(sse_client.events(_stream_url(api, task_id), client, last_event_id=first[-1].id))
    whole = list(sse_client.events(_stream_url(api, task_id), client))  # a finished task's replay
    assert [(e.id, e.event, e.data) for e in first + rest] == [(e.id, e.event, e.data) for e in whole]
    assert [e.data["data"] for e in whole if e.event == "chunk"] == ["a", "b", "c", "d", "e", "f"]
    assert whole[-1].event == "result"


def test_a_callback_backends_chunks_and_a_finished_tasks_replay(fleet):  # noqa: F811
    api, _, client, add = fleet
    add("cb", delay_s=0.5)
    task_id = submit(api, client, "cb", {"tokens": ["x", "y", "z"]}, stream=True, mode="callback")
    got = list(sse_client.events(_stream_url(api, task_id), client))
    assert [e.data["data"] for e in got if e.event == "chunk"] == ["x", "y", "z"]
    assert [e.data for e in got if e.event == "progress"] == [{"progress": 50}]
    assert got[-1].event == "result" and got[-1].data["status"] == "COMPLETED"
    started = time.monotonic()
    replay = list(sse_client.events(_stream_url(api, task_id), client))
    assert time.monotonic() - started < 2
    assert [(e.id, e.event, e.data) for e in replay] == [(e.id, e.event, e.data) for e in got]


def test_another_owners_stream_is_a_404(fleet, token):  # noqa: F811
    api, _, client, add = fleet
    add("mine", delay_s=0.1)
    task_id = submit(api, client, "mine", {"n": 1})
    wait_final(api, client, task_id)
    bob = {"Authorization": f"Bearer {token('bob')}"}
    other = requests.get(_stream_url(api, task_id), headers=bob, timeout=5)
    assert other.status_code == 404
    assert other.json() == requests.get(f"{api}/task/{task_id}", headers=bob, timeout=5).json()


def test_a_stream_follows_its_task_failing_over_to_a_second_server(fleet):  # noqa: F811
    """The first server cuts its streamed answer after two tokens: the attempt fails
    (retryable), the client sees a status event saying so, and the second server's
    answer completes the task on the same stream."""
    api, _, client, add = fleet
    cutter = add("flaky", delay_s=0.6)
    cutter.fault = "cut"
    task_id = submit(api, client, "flaky", {"tokens": ["1", "2", "3"]}, stream=True)
    got: list[sse_client.Received] = []
    reader = threading.Thread(target=sse_client.follow, args=(_stream_url(api, task_id), client, 60, got))
    reader.start()
    deadline = time.monotonic() + 15
    while not any(e.event == "chunk" for e in got):
        assert time.monotonic() < deadline, got
        time.sleep(0.05)
    add("steady", delay_s=0.6, capabilities=["flaky"])
    reader.join(timeout=60)
    assert not reader.is_alive()
    statuses = [(e.data["status"], e.data["serverId"]) for e in got if e.event == "status"]
    assert statuses == [
        ("PENDING", None),
        ("PROCESSING", "flaky"),
        ("PENDING", None),
        ("PROCESSING", "steady"),
        ("COMPLETED", "steady"),
    ]
    cut = [e for e in got if e.event == "status"][2]
    assert "stream cut after 2 chunks" in cut.data["error"]
    assert [e.data["data"] for e in got if e.event == "chunk"] == ["1", "2", "1", "2", "3"]
    assert got[-1].event == "result" and got[-1].data["attempts"] == 2
