"""One error hierarchy for taskfleet. The API maps each class to a JSON answer."""

from __future__ import annotations

from typing import Any


class TaskfleetError(Exception):
    """Base of every error taskfleet raises on purpose."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidInput(TaskfleetError):
    """Raised when a request is well-formed JSON but its content breaks a rule."""

    status = 422
    code = "validation_error"


class NotFound(TaskfleetError):
    """Raised when an id names nothing the caller may see."""

    status = 404
    code = "not_found"


class Forbidden(TaskfleetError):
    """Raised when the caller is known but may not do this."""

    status = 403
    code = "forbidden"


class Unauthorized(TaskfleetError):
    """Raised when a credential (JWT or callback token) is missing, forged or expired."""

    status = 401
    code = "unauthorized"


class Conflict(TaskfleetError):
    """Raised when a transition is not allowed from the task's current state."""

    status = 409
    code = "conflict"

    def __init__(self, message: str, current_status: str | None = None) -> None:
        super().__init__(message, {"currentStatus": current_status} if current_status else None)
        self.current_status = current_status


class StoreUnavailable(TaskfleetError):
    """Raised when Redis or the database cannot be reached; the caller may retry later."""

    status = 503
    code = "unavailable"
    retry_after_s = 5


class ProfileCapReached(TaskfleetError):
    """Raised when a task no server can serve would add one more distinct requirement
    profile to the waiting lines than ``MAX_WAITING_PROFILES`` allows."""

    status = 429
    code = "too_many_waiting_profiles"
    retry_after_s = 60

    def __init__(self, max_profiles: int) -> None:
        super().__init__(
            f"{max_profiles} distinct requirement profiles (capabilities + group) are waiting "
            "already and no server offers this one; retry later or use capabilities a server has",
            {"maxWaitingProfiles": max_profiles},
        )


class RedisRefusesWrites(StoreUnavailable):
    """Redis answers but refuses writes: its memory is at ``maxmemory`` (policy
    ``noeviction``) or it is a read-only replica. The refused command wrote nothing."""

    code = "redis_full"
    retry_after_s = 30

    def __init__(self) -> None:
        super().__init__("Redis refuses writes (its memory is full or it is read-only); try again later")


class BackendError(TaskfleetError):
    """Raised when a backend server's answer is a failure for this attempt."""

    status = 502
    code = "backend_error"

    def __init__(self, message: str, kind: str, retryable: bool = True) -> None:
        super().__init__(message, {"kind": kind})
        self.kind = kind
        self.retryable = retryable


class BackendBusy(BackendError):
    """Raised when a backend answers 429/503: not a failure of the server's health."""

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        super().__init__(message, kind="busy", retryable=True)
        self.retry_after_s = retry_after_s


class LimitReached(TaskfleetError):
    """Raised when a task type's concurrency limit (or the ``*`` limit of all tasks) has
    no room for one more attempt; the task waits in that limit's line."""

    status = 409
    code = "limit_reached"

    def __init__(self, limit_type: str) -> None:
        super().__init__(f"concurrency limit {limit_type!r} is full", {"limit": limit_type})
        self.limit_type = limit_type


class LimitsNotLoaded(TaskfleetError):
    """Raised when Redis does not hold the concurrency limits (it is new or lost its
    data): no reservation is made until they are published from the database."""

    status = 503
    code = "unavailable"


class ClientLimitExceeded(TaskfleetError):
    """Raised when a client's submission is refused by one of its limits for now; it may
    try again after ``retry_after_s``."""

    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, retry_after_s: int, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, {**(details or {}), "retryAfterSeconds": retry_after_s})
        self.retry_after_s = retry_after_s


class RateLimited(ClientLimitExceeded):
    """Raised when a client submits faster than its token bucket refills."""

    code = "rate_limited"


class TooManyUnfinished(ClientLimitExceeded):
    """Raised when a submission would take a client past its cap of unfinished tasks."""

    code = "too_many_unfinished"
