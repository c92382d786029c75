"""A small SSE client for the tests: reads a task's event stream as a browser's
EventSource would, and reconnects with Last-Event-ID after a dropped connection."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests

from app.core.events import SSEParser


@dataclass
class Received:
    id: str
    event: str
    data: Any
    at: float  # time.monotonic() when it was read


def events(
    url: str, headers: dict[str, str], last_event_id: str | None = None, timeout_s: float = 30
) -> Iterator[Received]:
    """The stream's events as they arrive, until it ends (raises on a dropped connection)."""
    sent = {**headers, **({"Last-Event-ID": last_event_id} if last_event_id else {})}
    with requests.get(url, headers=sent, stream=True, timeout=(5, timeout_s)) as response:
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("text/event-stream")
        parser = SSEParser()
        while True:
            data = response.raw.read1(65536)
            if not data:
                return
            for message in parser.feed(data):
                yield Received(message.id or "", message.event, json.loads(message.data), time.monotonic())


def follow(
    url: str, headers: dict[str, str], deadline_s: float = 60, into: list[Received] | None = None
) -> tuple[list[Received], int]:
    """Every event of the stream to its ``result``, reconnecting with the last id read
    after a dropped connection or an error answer; (events, reconnections). ``into``:
    a list to add the events to as they come."""
    got: list[Received] = [] if into is None else into
    reconnections = 0
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            for event in events(url, headers, got[-1].id if got else None, timeout_s=20):
                got.append(event)
                if event.event == "result":
                    return got, reconnections
        except (requests.RequestException, AssertionError, KeyError, ValueError):
            pass
        reconnections += 1
        time.sleep(0.5)
    raise AssertionError(f"no result within {deadline_s}s: {[(e.id, e.event) for e in got]}")
