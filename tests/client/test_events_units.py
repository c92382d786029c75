"""The event stream in the client without a server: the SSE decoder, resuming a dropped
stream with Last-Event-ID, giving up, falling back to polling an older server, and the
snapshots that status events make (httpx's MockTransport plays the server)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from taskfleet_client import (
    AsyncClient,
    Backoff,
    Client,
    Event,
    NoEventStream,
    NotFound,
    Reconnect,
    Task,
    TransportError,
)
from taskfleet_client.events import Snapshots, SSEDecoder, decode

FAST = Reconnect(tries=2, first_s=0.0)
NO_WAIT = Backoff(first_s=0.0, max_s=0.0)


def test_the_decoder_follows_the_sse_rules():
    lines = [
        ": a comment",
        "id: 3-0",
        "event: status",
        "data: first",
        "data:  second",  # one space dropped, the second kept
        "retry: 100",  # an unknown field here: ignored
        "",
        "event: nothing",  # no data: not dispatched
        "",
        "data",  # a field name alone: empty data
        "",
        "id: 4-1",
        "event: chunk",
        "data: not json",
        "",
        "id: 9-9",
        "data: cut before its blank line",
    ]
    got = list(decode(iter(lines)))
    assert got == [
        Event("3-0", "status", "first\n second"),  # not JSON: the text
        Event("3-0", "message", ""),  # the last id carries over
        Event("4-1", "chunk", "not json"),
    ]


def test_the_decoder_ignores_an_id_with_a_nul_and_keeps_colons_in_values():
    decoder = SSEDecoder()
    assert decoder.line("id: 1-0") is None
    assert decoder.line("id: bad\0id") is None
    assert decoder.line("data: a:b: c") is None
    assert decoder.line("") == ("1-0", "message", "a:b: c")
    assert decoder.line('data: {"status":') is None
    assert decoder.line('data: "PENDING"}') is None
    assert list(decode(iter(['data: {"status":', 'data: "PENDING"}', ""]))) == [
        Event("", "message", {"status": "PENDING"})  # data lines joined, then read as JSON
    ]


def sse(*events: tuple[str, str, object]) -> bytes:
    return "".join(f"id: {i}\nevent: {n}\ndata: {json.dumps(d)}\n\n" for i, n, d in events).encode()


CREATED = "2026-01-01T00:00:00+00:00"
TASK = {"id": "t1", "type": "llm", "status": "PENDING", "progress": 0, "createdAt": CREATED}
DONE = {**TASK, "status": "COMPLETED", "progress": 100, "result": {"text": "ab"}}
WHOLE = [
    ("1-0", "status", {"status": "PENDING", "attempt": 0, "serverId": None, "at": 1}),
    ("2-0", "status", {"status": "PROCESSING", "attempt": 1, "serverId": "s1", "at": 2}),
    ("2-1", "chunk", {"data": "a"}),
    ("2-2", "chunk", {"data": "b"}),
    ("3-0", "status", {"status": "COMPLETED", "attempt": 1, "serverId": "s1", "at": 3}),
    ("3-r", "result", DONE),
]


class Cut(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that sends ``data`` and then breaks, as a dropped connection does."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self.data
        raise httpx.ReadError("connection reset")

    async def __aiter__(self):
        yield self.data
        raise httpx.ReadError("connection reset")


def streaming_server(seen: list[str | None], cut_after: int = 3) -> Callable[[httpx.Request], httpx.Response]:
    """The task's stream: the first connection breaks after ``cut_after`` events, the
    next ones resume after their Last-Event-ID; ``seen``: each one's Last-Event-ID."""
    headers = {"Content-Type": "text/event-stream"}

    def handle(request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("/events"):
            return httpx.Response(200, json=TASK)
        last = request.headers.get("Last-Event-ID")
        seen.append(last)
        ids = [e[0] for e in WHOLE]
        rest = WHOLE[ids.index(last) + 1 :] if last else WHOLE
        if len(seen) == 1:
            return httpx.Response(200, headers=headers, stream=Cut(b": open\n\n" + sse(*rest[:cut_after])))
        return httpx.Response(200, headers=headers, content=sse(*rest))

    return handle


def test_a_dropped_stream_is_resumed_after_the_last_event_read():
    seen: list[str | None] = []
    with Client("http://tf", transport=httpx.MockTransport(streaming_server(seen)), reconnect=FAST) as tf:
        got = list(tf.events("t1"))
    assert [(e.id, e.name, e.data) for e in got] == WHOLE
    assert seen == [None, "2-1"]
    assert got[-1].task is not None and got[-1].task.result == {"text": "ab"}


def test_a_stream_that_ends_without_its_result_is_resumed_too():
    seen: list[str | None] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Last-Event-ID"))
        body = sse(*WHOLE[:2]) if len(seen) == 1 else sse(*WHOLE[2:])
        return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, content=body)

    with Client("http://tf", transport=httpx.MockTransport(handle), reconnect=FAST) as tf:
        assert [e.id for e in tf.events("t1", last_event_id="0-0")] == [e[0] for e in WHOLE]
    assert seen == ["0-0", "2-0"]


def test_reconnecting_gives_up_after_its_tries_in_a_row():
    calls = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers.get("Last-Event-ID"))
        return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, stream=Cut(b": open\n\n"))

    transport = httpx.MockTransport(handle)
    with (
        Client("http://tf", transport=transport, reconnect=FAST) as tf,
        pytest.raises(TransportError, match="dropped 2 times"),
    ):
        list(tf.events("t1"))
    assert calls == [None, None, None]


def test_an_unknown_task_or_a_server_without_streams_is_no_event_stream():
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/t1/events"):
            return httpx.Response(404, json={"error": "not_found", "message": "no such route"})
        return httpx.Response(200, json={"not": "a stream"})

    with Client("http://tf", transport=httpx.MockTransport(handle)) as tf:
        with pytest.raises(NoEventStream) as caught:
            list(tf.events("t1"))
        assert isinstance(caught.value, NotFound) and caught.value.status == 404
        with pytest.raises(NoEventStream):  # a 200 that is not text/event-stream
            list(tf.events("t2"))


def test_wait_polls_a_server_without_event_streams_and_stops_asking_for_them():
    asked = {"events": 0, "task": 0}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            asked["events"] += 1
            return httpx.Response(404, json={"error": "not_found", "message": "Not Found"})
        asked["task"] += 1
        return httpx.Response(200, json=DONE if asked["task"] % 3 == 0 else TASK)

    with Client("http://tf", transport=httpx.MockTransport(handle), backoff=NO_WAIT) as tf:
        seen = [t.status for t in tf.watch("t1", timeout=5)]
        assert seen == ["PENDING", "COMPLETED"]  # the first state once, not again from polling
        assert tf.wait("t1").status == "COMPLETED"
    assert asked["events"] == 1


def test_wait_reads_the_stream_and_a_final_task_needs_no_stream():
    seen: list[str | None] = []
    with Client("http://tf", transport=httpx.MockTransport(streaming_server(seen)), reconnect=FAST) as tf:
        updates = list(tf.follow("t1", timeout=5))
    assert [u.status if isinstance(u, Task) else u.data["data"] for u in updates] == [
        "PENDING",
        "PROCESSING",
        "a",
        "b",
        "COMPLETED",
    ]
    assert isinstance(updates[-1], Task) and updates[-1].result == {"text": "ab"}

    with Client("http://tf", transport=httpx.MockTransport(lambda r: httpx.Response(200, json=DONE))) as tf:
        assert tf.wait("t1").result == {"text": "ab"}


def test_snapshots_never_go_back_while_the_stream_replays_the_past():
    now = {**TASK, "status": "PROCESSING", "progress": 40, "updatedAt": "2026-01-01T00:00:05+00:00"}
    snapshots = Snapshots(Task(now))
    at = 1767225600000  # 2026-01-01T00:00:00Z in ms
    replay = [
        Event("1-0", "status", {"status": "PENDING", "attempt": 0, "serverId": None, "at": at}),
        Event("2-0", "status", {"status": "PROCESSING", "attempt": 1, "serverId": "s1", "at": at + 1000}),
        Event("3-0", "progress", {"progress": 40}),
    ]
    assert [snapshots.apply(e) for e in replay] == [None, None, None]
    live = snapshots.apply(Event("4-0", "progress", {"progress": 70}))
    assert live is not None and (live.status, live.progress, live.server_id) == ("PROCESSING", 70, "s1")
    assert snapshots.apply(Event("4-1", "chunk", {"data": "x"})) is None
    retried = {"status": "PENDING", "attempt": 1, "serverId": None, "at": at + 9000, "error": "boom"}
    shown = snapshots.apply(Event("5-0", "status", retried))
    assert shown is not None and (shown.status, shown.error, shown.type) == ("PENDING", "boom", "llm")


def test_a_status_newer_than_the_first_read_counts_as_live_when_the_replay_lost_events():
    snapshots = Snapshots(Task({**TASK, "status": "PROCESSING", "updatedAt": "2026-01-01T00:00:05+00:00"}))
    late = {"status": "PENDING", "attempt": 1, "serverId": None, "at": 1767225600000 + 6000}
    shown = snapshots.apply(Event("7-0", "status", late))
    assert shown is not None and shown.status == "PENDING"


def test_the_async_client_resumes_and_falls_back_the_same_way():
    async def main() -> None:
        seen: list[str | None] = []
        transport = httpx.MockTransport(streaming_server(seen))
        async with AsyncClient("http://tf", transport=transport, reconnect=FAST) as tf:
            got = [e async for e in tf.events("t1")]
            assert [(e.id, e.name, e.data) for e in got] == WHOLE and seen == [None, "2-1"]
            assert (await tf.wait("t1", timeout=5)).result == {"text": "ab"}

        def old(request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/events"):
                return httpx.Response(404, json={"error": "not_found", "message": "Not Found"})
            return httpx.Response(200, json=DONE if old.calls > 1 else TASK)  # type: ignore[attr-defined]

        old.calls = 0  # type: ignore[attr-defined]

        def counted(request: httpx.Request) -> httpx.Response:
            old.calls += 1  # type: ignore[attr-defined]
            return old(request)

        async with AsyncClient("http://tf", transport=httpx.MockTransport(counted), backoff=NO_WAIT) as tf:
            assert [t.status async for t in tf.watch("t1", timeout=5)] == ["PENDING", "COMPLETED"]

    asyncio.run(main())
