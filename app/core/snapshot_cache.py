"""A value computed at most once per ``max_age_ms``, shared by concurrent readers: the
first reader past the age computes while the others wait for its answer, so N scrapers
arriving together cost one computation, not N."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SnapshotCache(Generic[T]):
    def __init__(self, max_age_ms: int) -> None:
        self.max_age_ms = max_age_ms
        self._lock = threading.Lock()  # gevent-patched in the API's workers
        self._value: T | None = None
        self._at_ms = 0
        self.refreshes = 0

    def get(self, now_ms: Callable[[], int], compute: Callable[[], T]) -> T:
        """The cached value if younger than ``max_age_ms`` at ``now_ms()``, else a new
        one from ``compute`` (an error is raised to the caller and nothing is cached)."""
        with self._lock:
            if self._value is None or now_ms() - self._at_ms >= self.max_age_ms:
                self._value = compute()
                self._at_ms = now_ms()
                self.refreshes += 1
            return self._value
