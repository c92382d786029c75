"""A task as the rest of the code sees it: what was asked (spec) and where it stands (state)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from app.core.states import AttemptOutcome, TaskMode, TaskStatus

#: Seconds; the seeds' TASK_TIMEOUT of one hour.
DEFAULT_TIMEOUT_S = 3600
#: Seconds; the longest timeout a task may ask for (a week).
MAX_TIMEOUT_S = 7 * 86400
#: Attempts after the first; the seeds' MAX_RETRIES.
DEFAULT_MAX_RETRIES = 3
#: 0-10, larger runs first; the middle so clients can go either way.
DEFAULT_PRIORITY = 5
#: Poll mode: seconds between two polls (the original executor's 5), and the fewest.
DEFAULT_POLL_INTERVAL_S = 5
MIN_POLL_INTERVAL_S = 1
#: Poll mode: polls per attempt at most (the original executor's 60).
DEFAULT_POLL_MAX_ATTEMPTS = 60
#: Bytes of JSON (``json_size``); a task's metadata is a label set, not a second payload,
#: and stays small enough to travel with the task everywhere (Redis, lists, answers).
METADATA_MAX_BYTES = 16 * 1024
#: Bytes of JSON (``json_size``); a larger payload is kept in the database only, not in
#: the task's Redis hash: Redis holds every waiting task in memory, and a backlog of
#: megabyte payloads would fill it, while only the dispatch and reads need the payload.
HOT_PAYLOAD_MAX_BYTES = 64 * 1024


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON: the one measure of the JSON size limits."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return len(text.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True)
class TaskSpec:
    """What the client asked for; never changes after submission."""

    type: str
    payload: Any = None
    priority: int = DEFAULT_PRIORITY
    capabilities: tuple[str, ...] = ()
    mode: TaskMode = TaskMode.SYNC
    timeout_s: int = DEFAULT_TIMEOUT_S
    max_retries: int = DEFAULT_MAX_RETRIES
    region: str | None = None
    group: str | None = None
    poll_interval_s: int = DEFAULT_POLL_INTERVAL_S
    poll_max_attempts: int = DEFAULT_POLL_MAX_ATTEMPTS
    #: The client's free-form JSON object (at most ``METADATA_MAX_BYTES``), kept and shown.
    metadata: dict[str, Any] | None = None
    #: True in a copy without its payload (the hot state of a payload over
    #: ``HOT_PAYLOAD_MAX_BYTES``): the database holds it (``state_sync.payload_of``).
    payload_in_db: bool = False
    #: Epoch ms before which it is not dispatched (SCHEDULED until then), if any.
    run_at_ms: int | None = None
    #: Ids of the tasks that must be COMPLETED before it runs (WAITING until then).
    depends_on: tuple[str, ...] = ()
    #: The job it was submitted in, and its item's ``key`` in that job.
    job_id: str | None = None
    job_key: str | None = None
    #: Ask the backend to stream its output (``"stream": true`` in the predict request).
    stream: bool = False

    def to_json(self) -> dict[str, Any]:
        data = {
            "type": self.type,
            "payload": self.payload,
            "priority": self.priority,
            "capabilities": list(self.capabilities),
            "mode": self.mode.value,
            "timeout_s": self.timeout_s,
            "max_retries": self.max_retries,
            "region": self.region,
            "group": self.group,
            "poll_interval_s": self.poll_interval_s,
            "poll_max_attempts": self.poll_max_attempts,
            "metadata": self.metadata,
        }
        if self.payload_in_db:
            data["payload_in_db"] = True
        # Only when set: most tasks have none, and the hot state stays as small as it was.
        if self.run_at_ms is not None:
            data["run_at_ms"] = self.run_at_ms
        if self.depends_on:
            data["depends_on"] = list(self.depends_on)
        if self.job_id is not None:
            data["job_id"] = self.job_id
        if self.job_key is not None:
            data["job_key"] = self.job_key
        if self.stream:
            data["stream"] = True
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskSpec:
        return cls(
            type=data["type"],
            payload=data.get("payload"),
            priority=int(data.get("priority", DEFAULT_PRIORITY)),
            capabilities=tuple(data.get("capabilities") or ()),
            mode=TaskMode(data.get("mode", TaskMode.SYNC)),
            timeout_s=int(data.get("timeout_s", DEFAULT_TIMEOUT_S)),
            max_retries=int(data.get("max_retries", DEFAULT_MAX_RETRIES)),
            region=data.get("region"),
            group=data.get("group"),
            poll_interval_s=int(data.get("poll_interval_s", DEFAULT_POLL_INTERVAL_S)),
            poll_max_attempts=int(data.get("poll_max_attempts", DEFAULT_POLL_MAX_ATTEMPTS)),
            metadata=data.get("metadata"),
            payload_in_db=bool(data.get("payload_in_db", False)),
            run_at_ms=None if data.get("run_at_ms") is None else int(data["run_at_ms"]),
            depends_on=tuple(data.get("depends_on") or ()),
            job_id=data.get("job_id"),
            job_key=data.get("job_key"),
            stream=bool(data.get("stream", False)),
        )

    def for_hot_state(self) -> TaskSpec:
        """This spec as Redis keeps it: without a payload over ``HOT_PAYLOAD_MAX_BYTES``."""
        if self.payload_in_db or self.payload is None or json_size(self.payload) <= HOT_PAYLOAD_MAX_BYTES:
            return self
        return replace(self, payload=None, payload_in_db=True)

    def with_payload(self, payload: Any) -> TaskSpec:
        """This spec with its payload back (read from the database)."""
        return replace(self, payload=payload, payload_in_db=False)


@dataclass(frozen=True)
class TaskState:
    """Where a task stands at ``version``; Redis holds the live copy, the database follows."""

    id: str
    owner: str
    spec: TaskSpec
    status: TaskStatus
    version: int
    created_ms: int
    updated_ms: int
    attempt: int = 0
    retry_base: int = 0
    progress: int = 0
    server_id: str | None = None
    result: Any = None
    error: str | None = None
    started_ms: int | None = None
    finished_ms: int | None = None
    #: The status the last transition came from (None for a new task).
    from_status: TaskStatus | None = None
    #: How the running attempt ended, when the last transition ended one.
    attempt_outcome: AttemptOutcome | None = None


@dataclass(frozen=True)
class TaskAttempt:
    """One attempt of a task on a server, as its durable record has it (``ended_ms`` and
    ``outcome`` None while it runs)."""

    attempt: int
    server_id: str
    started_ms: int
    ended_ms: int | None = None
    outcome: AttemptOutcome | None = None
    error: str | None = None
    #: The latest ``metadata`` the backend reported for it (callbacks, poll answers).
    metadata: dict[str, Any] | None = None

    @property
    def duration_ms(self) -> int | None:
        return None if self.ended_ms is None else max(0, self.ended_ms - self.started_ms)


def waiting_score(priority: int, created_ms: int) -> float:
    """Order of PENDING tasks waiting for a slot: higher priority first, then oldest.
    Lower scores come first; epoch ms stay below 1e13 until the year 2286."""
    return (10 - priority) * 1e13 + created_ms


def front_of_line_score(priority: int) -> float:
    """A waiting score ahead of every task of the same priority (a task sent back)."""
    return (10 - priority) * 1e13
