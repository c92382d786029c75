"""Poll mode's rules: where an attempt's status is read, what a status answer may say,
and when the next poll is due. Pure: the poll itself is ``app.services.polling``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from app.core.errors import BackendError

#: Poll errors in a row (connection, 5xx, not JSON) that fail the attempt.
POLL_ERRORS_IN_ROW = 3
#: What a status answer's ``status`` may be (the callback body's shape).
POLL_STATUSES = frozenset({"PENDING", "PROCESSING", "COMPLETED", "FAILED"})


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def status_url(answer: Any, status_endpoint: str | None, registered: tuple[str, ...], task_id: str) -> str:
    """Where to read the attempt's status, from the predict answer: its ``statusUrl``
    (absolute, and on the scheme, host and port of one of the server's registered
    endpoints), else ``{status endpoint}/{jobId}``, else ``{status endpoint}/{task id}``.
    Raises ``BackendError`` of kind ``bad_status_url`` (retryable) or
    ``poll_unsupported`` (no status endpoint and no statusUrl: not retryable)."""
    answer = answer if isinstance(answer, dict) else {}
    given = answer.get("statusUrl")
    if given is not None:
        if not isinstance(given, str) or urlsplit(given).scheme not in ("http", "https"):
            raise BackendError("statusUrl is not an absolute http(s) URL", "bad_status_url")
        try:
            origin = _origin(given)
        except ValueError as exc:
            raise BackendError("statusUrl is not a valid URL", "bad_status_url") from exc
        if origin not in {_origin(url) for url in registered}:
            raise BackendError(
                "statusUrl is not on the scheme, host and port of the server's endpoints", "bad_status_url"
            )
        return given
    if not status_endpoint:
        raise BackendError(
            "poll mode needs a statusUrl in the answer or a status endpoint",
            "poll_unsupported",
            retryable=False,
        )
    job_id = answer.get("jobId")
    name = str(job_id) if isinstance(job_id, str | int) and str(job_id) else task_id
    return f"{status_endpoint.rstrip('/')}/{quote(name, safe='')}"


def status_update(answer: Any) -> dict[str, Any]:
    """A status answer as a callback update; raises ``BackendError`` (``malformed``)
    when it does not have the callback body's shape."""
    if not isinstance(answer, dict) or answer.get("status") not in POLL_STATUSES:
        raise BackendError("status answer has no valid status", "malformed")
    progress = answer.get("progress")
    if progress is not None and (isinstance(progress, bool) or not isinstance(progress, int | float)):
        raise BackendError("status answer has a progress that is not a number", "malformed")
    metadata = answer.get("metadata")
    error = answer.get("error")
    return {
        "status": answer["status"],
        "progress": None if progress is None else max(0, min(100, int(progress))),
        "result": answer.get("result"),
        "error": None if error is None else str(error),
        "metadata": metadata if isinstance(metadata, dict) else None,
    }


def next_poll_ms(now_ms: int, interval_s: int, deadline_ms: int) -> int:
    """When the next poll is due: one interval on, never past the attempt's deadline."""
    return min(now_ms + interval_s * 1000, deadline_ms)
