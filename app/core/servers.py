"""A registered server as the rest of the code sees it (the database row stays in the
store): its configuration and durable status. Live figures are in the store's
``ServerRecord``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.core.server_health import ServerStatus

#: Slots a server offers when it does not say (the seeds' maxConcurrent).
DEFAULT_MAX_CONCURRENT = 10


@dataclass(frozen=True)
class BatchConfig:
    """A server that takes tasks in batches: at most ``max_size`` per call, sent once
    that many gathered or the oldest waited ``max_wait_ms``."""

    max_size: int
    max_wait_ms: int


@dataclass(frozen=True)
class Server:
    id: str
    name: str
    endpoints: dict[str, str]
    max_concurrent: int
    capabilities: tuple[str, ...]
    groups: tuple[str, ...]
    priority: int
    region: str | None
    #: Configured weight; None: derived from its metrics.
    weight: int | None
    status: ServerStatus
    maintenance: bool
    #: Whether it has an apiKey (the key itself is only read to call the server).
    has_api_key: bool
    #: Seconds a call to it may take at most (None: the attempt's own timeout).
    timeout_s: int | None
    batch: BatchConfig | None
    created_at: datetime
    updated_at: datetime
    #: "required" or "optional" (``app.core.signatures``); None: the deployment's
    #: ``CALLBACK_SIGNATURE``.
    callback_signature: str | None = None


@dataclass(frozen=True)
class ServerConfig:
    """What a registration sets (the API's ``ServerIn``, snake_case)."""

    name: str
    endpoints: dict[str, str]
    max_concurrent: int = DEFAULT_MAX_CONCURRENT
    capabilities: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    priority: int = 0
    region: str | None = None
    weight: int | None = None
    #: Absent (None) keeps the key it had; a registration cannot clear it.
    api_key: str | None = None
    timeout_s: int | None = None
    batch: BatchConfig | None = None
    #: "required", "optional", or None for the deployment's default; only applied when
    #: ``sets_callback_signature`` (a registration that does not name it keeps the
    #: server's, so re-registering with an older script never lowers the demand).
    callback_signature: str | None = None
    sets_callback_signature: bool = False

    @classmethod
    def from_input(cls, data: dict[str, Any]) -> ServerConfig:
        return cls(
            name=data["name"],
            endpoints=dict(data["endpoints"]),
            max_concurrent=data.get("max_concurrent", DEFAULT_MAX_CONCURRENT),
            capabilities=tuple(sorted(set(data.get("capabilities", [])))),
            groups=tuple(sorted(set(data.get("groups", [])))),
            priority=data.get("priority", 0),
            region=data.get("region"),
            weight=data.get("weight"),
            api_key=data.get("api_key"),
            timeout_s=data.get("timeout_s"),
            batch=BatchConfig(**data["batch"]) if data.get("batch") else None,
            callback_signature=data.get("callback_signature"),
            sets_callback_signature="callback_signature" in data,
        )
