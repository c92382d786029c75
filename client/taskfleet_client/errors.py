"""One exception class per error status of the API, all under :class:`TaskfleetError`.

The API answers every error as JSON ``{"error", "message", "details"}``; each exception
carries those fields and the HTTP ``status``. ``str(exc)`` is the API's message with
the status, e.g. ``task 123 not found (404)``.
"""

from __future__ import annotations

from typing import Any


class TaskfleetError(Exception):
    """Base of every error this client raises."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        #: The API's human-readable message.
        self.message = message
        #: The HTTP status, or None when no answer came (see :class:`TransportError`).
        self.status = status
        #: The API's machine-readable code, e.g. ``not_found``, ``validation_error``.
        self.error = error
        #: The API's details, e.g. the fields a 422 refused.
        self.details: dict[str, Any] = details or {}

    def __str__(self) -> str:
        return self.message if self.status is None else f"{self.message} ({self.status})"


class BadRequest(TaskfleetError):
    """Raised on 400: the body was not valid JSON (or nested too deeply)."""


class Unauthorized(TaskfleetError):
    """Raised on 401: the token is missing, forged or expired."""


class Forbidden(TaskfleetError):
    """Raised on 403: the token's roles do not allow this (e.g. servers need admin)."""


class NotFound(TaskfleetError):
    """Raised on 404: no such task, job, server or limit (another owner's task or job is
    404 too)."""


class NoEventStream(NotFound):
    """Raised by ``events`` when the server answers the event stream's route with no
    stream: a 404 (no such task, not yours, or a server older than event streams), or an
    answer that is not ``text/event-stream``. ``watch`` and ``wait`` poll instead."""


class Conflict(TaskfleetError):
    """Raised on 409: the task's state does not allow this (cancel a final task, retry
    one that did not fail). ``details["currentStatus"]`` says where it is."""


class PayloadTooLarge(TaskfleetError):
    """Raised on 413: the body is larger than the server's ``MAX_BODY_BYTES``."""


class UnsupportedMediaType(TaskfleetError):
    """Raised on 415: the body was not ``application/json``."""


class Unprocessable(TaskfleetError):
    """Raised on 422: wrong types, values out of range or unknown fields; ``details``
    names them."""


class RetryableError(TaskfleetError):
    """An answer that asks to come back later; ``retry_after`` is its Retry-After in
    seconds, when it gave one. The client retries these itself a few times first."""

    def __init__(self, message: str, *, retry_after: float | None = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.retry_after = retry_after


class TooManyRequests(RetryableError):
    """Raised on 429, once the client's retries are spent."""


class Unavailable(RetryableError):
    """Raised on 503 (Redis or the database unreachable), once the client's retries are
    spent."""


class ServerError(TaskfleetError):
    """Raised on any other 5xx."""


class TransportError(TaskfleetError):
    """Raised when no answer came: the connection failed or timed out (``status`` is
    None). The underlying httpx exception is the ``__cause__``."""


class WaitTimeout(TaskfleetError, TimeoutError):
    """Raised by ``wait`` when the task is not final within its ``timeout`` (by
    ``wait_job`` when the job still runs); ``task`` is the last state seen (the
    :class:`~taskfleet_client.Job`, for ``wait_job``)."""

    def __init__(self, message: str, task: Any) -> None:
        super().__init__(message)
        self.task = task


#: The exception class for each error status; other 4xx are TaskfleetError, other 5xx
#: ServerError.
BY_STATUS: dict[int, type[TaskfleetError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: Unprocessable,
    429: TooManyRequests,
    503: Unavailable,
}


def error_for(status: int, body: Any, text: str, retry_after: float | None = None) -> TaskfleetError:
    """The exception for an error answer: its JSON ``{error, message, details}`` when it
    has one (a proxy's HTML page has not: then the start of its text)."""
    cls = BY_STATUS.get(status) or (ServerError if status >= 500 else TaskfleetError)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        message, error = body["message"], body.get("error")
        details = body.get("details") if isinstance(body.get("details"), dict) else None
    else:
        message, error, details = (text.strip()[:200] or f"HTTP {status}"), None, None
    fields: dict[str, Any] = {"status": status, "error": error, "details": details}
    if issubclass(cls, RetryableError):
        return cls(message, retry_after=retry_after, **fields)
    return cls(message, **fields)
