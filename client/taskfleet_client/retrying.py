"""When to send a request again, and after how long: pure rules shared by both clients."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC

import httpx

#: Answers that mean "not now, come back later": the request was not carried out.
RETRY_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before sending a request again.

    A 429 or 503 is retried for any request, after its ``Retry-After`` when it has one;
    a failed connection (nothing was sent) for any request too; an answer lost after
    the request went out (a read error or timeout) only for idempotent requests.
    """

    #: Tries after the first.
    retries: int = 3
    #: The first wait when the server names none (seconds), doubled each time.
    backoff_s: float = 0.5
    #: No wait is longer, Retry-After included (seconds).
    max_wait_s: float = 30.0

    def delay_s(self, attempt: int, retry_after_s: float | None) -> float:
        """The wait before try ``attempt + 1`` (``attempt`` counts from 1)."""
        wait = retry_after_s if retry_after_s is not None else self.backoff_s * 2 ** (attempt - 1)
        return max(0.0, min(wait, self.max_wait_s))


NO_RETRIES = RetryPolicy(retries=0)


def retry_after_s(headers: Mapping[str, str], now_s: float | None = None) -> float | None:
    """A ``Retry-After`` header in seconds: delta-seconds or an HTTP date."""
    value = headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now_s is None else now_s))


def retry_on_status(status: int) -> bool:
    return status in RETRY_STATUSES


def retry_on_error(exc: httpx.TransportError, idempotent: bool) -> bool:
    """A transport error is worth another try when the request never left (any request)
    or may be repeated safely (idempotent requests)."""
    never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    answer_lost = (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError)
    return never_sent or (idempotent and isinstance(exc, answer_lost))
