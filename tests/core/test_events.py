"""Event ids, the status event's error rule, and the SSE text format both ways."""

from __future__ import annotations

import pytest

from app.core.events import (
    RESULT_SEQ,
    Event,
    EventId,
    SSEParser,
    error_shown,
    format_sse,
    sse_payload,
    transition_event,
)


def test_ids_round_trip_and_order_by_version_then_sequence():
    ids = [EventId.parse(t) for t in ("2-0", "1-0", "2-10", "2-r", "10-0", "2-2")]
    assert [str(i) for i in sorted(ids)] == ["1-0", "2-0", "2-2", "2-10", "2-r", "10-0"]
    assert EventId.parse("7-r") == EventId(7, RESULT_SEQ) and str(EventId(7, RESULT_SEQ)) == "7-r"


@pytest.mark.parametrize(
    "bad", ["", "1", "a-0", "1-0-0", "-1-0", "1--1", "1-R", "1 -0", "1234567890123456-0"]
)
def test_anything_else_is_not_an_id(bad):
    with pytest.raises(ValueError):
        EventId.parse(bad)


def test_a_status_event_shows_the_error_of_a_failed_attempt_or_task_only():
    assert error_shown("PENDING", "FAILED", "boom") == "boom"  # retried after a failure
    assert error_shown("PENDING", "TIMEOUT", "slow") == "slow"
    assert error_shown("FAILED", None, "dependency failed") == "dependency failed"
    assert error_shown("TIMEOUT", None, "no server") == "no server"
    assert error_shown("PENDING", "BUSY", "old error") is None  # sent back, not failed
    assert error_shown("PROCESSING", None, "old error") is None
    assert error_shown("COMPLETED", "COMPLETED", "old error") is None


def test_a_progress_update_is_a_progress_event_only_when_progress_changed():
    same = transition_event(5, "PROCESSING", "PROCESSING", 1, "s1", 9, 40, 40)
    changed = transition_event(5, "PROCESSING", "PROCESSING", 1, "s1", 9, 50, 40)
    status = transition_event(6, "PROCESSING", "PENDING", 1, None, 9, 50, 50, "boom")
    assert same is None
    assert changed == Event(EventId(5, 0), "progress", {}) and changed.data == {"progress": 50}
    assert status.name == "status" and status.data == {
        "status": "PENDING",
        "attempt": 1,
        "serverId": None,
        "at": 9,
        "error": "boom",
    }


def test_events_written_are_read_back_whatever_the_chunking():
    events = [
        Event(EventId(1, 0), "status", {"status": "PENDING"}),
        Event(EventId(2, 1), "chunk", {"data": "multi\nline ü"}),
    ]
    text = ("".join(format_sse(e) for e in events)).encode()
    for size in (1, 2, 3, 7, len(text)):
        parser = SSEParser()
        got = [m for start in range(0, len(text), size) for m in parser.feed(text[start : start + size])]
        assert [(m.id, m.event, sse_payload(m)) for m in got] == [(str(e.id), e.name, e.data) for e in events]


def test_the_parser_follows_the_sse_rules():
    body = (
        b": a comment\r\n"
        b"data: first\r\ndata:second\r\n\r\n"  # data lines join with LF; one leading space dropped
        b'event: result\rdata: {"a": 1}\r\r'  # CR line ends
        b"id: 5\nretry: 100\nunknown: x\n\n"  # no data: not dispatched
        b"data\n\n"  # a field with no colon: empty data, dispatched
        b"data: not ended"  # cut: never dispatched
    )
    got = list(SSEParser().feed(body))
    assert [(m.event, m.data) for m in got] == [
        ("message", "first\nsecond"),
        ("result", '{"a": 1}'),
        ("message", ""),
    ]
    assert sse_payload(got[1]) == {"a": 1} and sse_payload(got[0]) == "first\nsecond"


def test_a_crlf_split_across_reads_is_one_line_end():
    parser = SSEParser()
    assert list(parser.feed(b"data: x\r")) == []
    assert list(parser.feed(b"\n\r")) == []
    assert [m.data for m in parser.feed(b"\n")] == ["x"]
