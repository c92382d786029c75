"""The one clock. Services take a ``Clock`` so tests can move time instead of sleeping."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Clock(Protocol):
    def now_ms(self) -> int: ...


class SystemClock:
    """Wall-clock time in milliseconds since the epoch."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that only moves when told to; for tests."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now_ms = start_ms

    def now_ms(self) -> int:
        return self._now_ms

    def advance(self, seconds: float) -> None:
        self._now_ms += int(seconds * 1000)


def ms_to_datetime(ms: int | None) -> datetime | None:
    """Epoch milliseconds to an aware UTC datetime (None stays None)."""
    if ms is None:
        return None
    return EPOCH + timedelta(milliseconds=ms)


def datetime_to_ms(value: datetime | None) -> int | None:
    """An aware or naive-UTC datetime to epoch milliseconds (None stays None)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - EPOCH) // timedelta(milliseconds=1)


def iso(ms: int | None) -> str | None:
    """Epoch milliseconds as an ISO 8601 UTC string with a ``Z``."""
    value = ms_to_datetime(ms)
    return None if value is None else value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
