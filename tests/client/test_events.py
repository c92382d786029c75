"""The client's event stream on the real stack (gunicorn's gevent workers): a streaming
backend's chunks, resuming after an event id, wait() and watch() reading the stream,
another owner's stream."""

from __future__ import annotations

import asyncio

import pytest
from taskfleet_client import AsyncClient, Client, Event, NoEventStream, Task

TOKENS = ["The", " quick", " brown", " fox"]


@pytest.fixture
def alice(fleet):
    with Client(fleet.url, fleet.alice) as client:
        yield client


def test_events_bring_a_streamed_answer_chunk_by_chunk_then_the_result(alice):
    task = alice.submit("echo", {"tokens": TOKENS}, capabilities=["echo"], stream=True)
    got = list(alice.events(task.id))
    assert [e.data["data"] for e in got if e.name == "chunk"] == TOKENS
    statuses = [e.data["status"] for e in got if e.name == "status"]
    assert statuses[0] == "PENDING" and statuses[-1] == "COMPLETED" and "PROCESSING" in statuses
    assert got[-1].name == "result" and got[-1].task is not None
    assert got[-1].task.result["text"] == "".join(TOKENS) and got[-1].task.raw["stream"] is True
    assert len({e.id for e in got}) == len(got)

    third = got[2]
    rest = list(alice.events(task.id, last_event_id=third.id))
    assert [(e.id, e.name, e.data) for e in rest] == [(e.id, e.name, e.data) for e in got[3:]]


def test_wait_and_watch_read_the_stream(alice):
    task = alice.submit("echo", {"tokens": TOKENS}, capabilities=["echo"], stream=True)
    updates = list(alice.follow(task.id, timeout=30))
    chunks = [u.data["data"] for u in updates if isinstance(u, Event)]
    assert chunks == TOKENS
    tasks = [u for u in updates if isinstance(u, Task)]
    assert [t.status for t in tasks][-1] == "COMPLETED" and tasks[-1].result["text"] == "".join(TOKENS)
    assert tasks[0].type == "echo" and alice._streams is True

    other = alice.submit("echo", {"n": 1}, capabilities=["echo"])
    seen = [(t.status, t.progress) for t in alice.watch(other.id, timeout=30)]
    assert seen[-1] == ("COMPLETED", 100) and len(seen) == len(set(seen))
    assert alice.wait(other.id, timeout=30).result == {"echo": {"n": 1}, "server": "fleet-backend"}


def test_another_owners_stream_is_no_event_stream(alice, fleet):
    task = alice.submit("echo", {"n": 2}, capabilities=["echo"])
    with Client(fleet.url, fleet.bob) as bob, pytest.raises(NoEventStream):
        list(bob.events(task.id))
    alice.wait(task.id, timeout=30)


def test_the_async_client_follows_a_stream(fleet):
    async def main() -> None:
        async with AsyncClient(fleet.url, fleet.alice) as tf:
            task = await tf.submit("echo", {"tokens": TOKENS}, capabilities=["echo"], stream=True)
            chunks = [e.data["data"] async for e in tf.events(task.id) if e.name == "chunk"]
            assert chunks == TOKENS
            done = await tf.wait(task.id, timeout=30)
            assert done.ok and done.result["text"] == "".join(TOKENS)

    asyncio.run(main())
