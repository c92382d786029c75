"""One record type per Redis hash: each owns its field names and how values convert
(like rq's ``Job.to_dict`` / ``restore``). The rest of the code reads attributes; a
test (``tests/test_structure.py``) fails if a hash field name shows up elsewhere in
Python, and one holds the Lua scripts' field names against these classes.

- ``ServerRecord``: ``tf:server:<id>``, a server's live state (status, breaker,
  health, metrics, load it reported).
- ``PoolMeta``: ``tf:pool:<p>:meta``, the profile a pool's servers share.
- ``TaskRecord``: ``tf:task:<id>``, a task's hot state.
- ``POOL_SLOT_FIELDS``: the per-server fields of a pool hash (``'<sid>|<field>'``),
  the same list as ``FIELDS`` in ``lua/lib/pool.lua``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Self, get_type_hints

from app.core.server_health import ServerStatus
from app.core.states import AttemptOutcome, TaskStatus
from app.core.task import TaskSpec, TaskState

#: Per-server selection fields of a pool hash ('<sid>|<name>'): see lua/lib/pool.lua.
POOL_SLOT_FIELDS = (
    "max",
    "used",
    "w",
    "ewma",
    "pass",
    "rr",
    "ok",
    "deg",
    "sleep",
    "probe",
    "prio",
    "cpu",
    "mem",
    "rep_ms",
)


@dataclass(frozen=True)
class SlotUse:
    """A server's slots as its pool hash has them now."""

    max: int = 0
    used: int = 0
    #: Whether it takes tasks: online or degraded, not in maintenance or draining.
    ok: bool = False

    @classmethod
    def from_pool_hash(cls, raw: dict[str, str]) -> dict[str, SlotUse]:
        """Every server of one pool hash ('<sid>|<field>' entries)."""
        found: dict[str, dict[str, int]] = {}
        for name, value in raw.items():
            sid, _, slot_field = name.rpartition("|")
            if slot_field in ("max", "used", "ok") and value != "":
                found.setdefault(sid, {})[slot_field] = int(float(value))
        return {sid: cls(v.get("max", 0), v.get("used", 0), bool(v.get("ok", 0))) for sid, v in found.items()}

    @property
    def free(self) -> int:
        return max(0, self.max - self.used)


def _decode(kind: Any, raw: str) -> Any:
    if kind in (int, "int", "int | None"):
        return int(float(raw))
    if kind in (float, "float", "float | None"):
        return float(raw)
    if kind in (bool, "bool"):
        return raw == "1"
    if isinstance(kind, type) and issubclass(kind, str) and kind is not str:
        return kind(raw)  # a str Enum
    return raw


def _is_number(raw: str) -> bool:
    try:
        return math.isfinite(float(raw))
    except ValueError:
        return False


def _encode(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


class HashRecord:
    """Base of the flat records: every dataclass field is a hash field of the same name
    (``None`` = absent); ``from_hash`` fills defaults for absent ones."""

    _hints: ClassVar[dict[str, Any]]

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))  # type: ignore[arg-type]

    @classmethod
    def _kind(cls, name: str) -> Any:
        hints = cls.__dict__.get("_hints")
        if hints is None:
            hints = {n: t for n, t in get_type_hints(cls).items() if n in cls.field_names()}
            cls._hints = hints
        kind = hints[name]
        args = [a for a in getattr(kind, "__args__", ()) if a is not type(None)]
        return args[0] if args else kind

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> Self:
        values = {
            name: _decode(cls._kind(name), raw[name]) for name in cls.field_names() if raw.get(name, "") != ""
        }
        return cls(**values)

    @classmethod
    def patch(cls, **changes: Any) -> dict[str, str]:
        """Hash fields for a partial update; raises ``TypeError`` for a name the record
        does not have. A ``None`` value is written as '' (absent)."""
        unknown = set(changes) - set(cls.field_names())
        if unknown:
            raise TypeError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
        return {name: "" if value is None else _encode(value) for name, value in changes.items()}

    def to_hash(self) -> dict[str, str]:
        return {
            name: _encode(value) for name in self.field_names() if (value := getattr(self, name)) is not None
        }


@dataclass(frozen=True)
class ServerRecord(HashRecord):
    """``tf:server:<id>``. Written by the registry, health checks and heartbeats (here)
    and by ``lb_release.lua`` / ``lb_sync.lua`` (metrics, breaker, busy periods)."""

    #: The field of ``pool`` (read on its own to find a server's pool).
    POOL_FIELD: ClassVar[str] = "pool"

    id: str = ""
    #: The pool it is in (servers sharing capabilities, groups and region).
    pool: str | None = None
    status: ServerStatus = ServerStatus.ONLINE
    maintenance: bool = False
    max_concurrent: int = 0
    #: Effective weight for selection (configured, or from its metrics).
    weight: float | None = None
    #: Configured priority (0..100): among servers that score the same, the higher first.
    priority: int = 0
    last_seen_ms: int | None = None
    #: Why it went offline: 'silent' (a heartbeat undoes it) or 'health' (only checks).
    offline_reason: str | None = None
    offline_since_ms: int | None = None
    # Health checks (app.core.server_health).
    health_score: int = 100
    interval_s: float | None = None
    ok_in_row: int = 0
    bad_in_row: int = 0
    last_check_ms: int | None = None
    #: Why the last check failed (``app.backends.HealthAnswer.reason``); None after a success.
    last_check_error: str | None = None
    # Circuit breaker and busy periods (lb_release.lua, lb_sync.lua).
    circuit: str = "closed"
    circuit_until_ms: int | None = None
    busy_until_ms: int | None = None
    fails_in_row: int = 0
    # Metrics (lb_release.lua).
    processed: int = 0
    successes: int = 0
    failures: int = 0
    resp_total_ms: int = 0
    ewma_ms: float | None = None
    last_active_ms: int | None = None
    # What the server reported in its last heartbeat that carried figures (one snapshot:
    # such a heartbeat replaces every one of them), and when. Fractions from 0 to 1.
    reported_in_flight: int | None = None
    reported_queue_depth: int | None = None
    reported_cpu: float | None = None
    reported_memory: float | None = None
    reported_disk: float | None = None
    reported_network: float | None = None
    reported_gpu_utilization: float | None = None
    reported_gpu_memory: float | None = None
    reported_at_ms: int | None = None

    #: The fields of one heartbeat's figures (all written together), by their API names
    #: in snake_case (``HeartbeatIn``): 'cpu' is ``reported_cpu``.
    REPORTED: ClassVar[tuple[str, ...]] = (
        "in_flight",
        "queue_depth",
        "cpu",
        "memory",
        "disk",
        "network",
        "gpu_utilization",
        "gpu_memory",
    )

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> Self:
        # Before heartbeats checked it, gpuUtilization was stored as sent (any JSON): a
        # value that is not a number reads as not reported.
        gpu = raw.get("reported_gpu_utilization")
        if gpu and not _is_number(gpu):
            raw = {k: v for k, v in raw.items() if k != "reported_gpu_utilization"}
        return super().from_hash(raw)

    @classmethod
    def reported_patch(cls, figures: dict[str, Any], now_ms: int) -> dict[str, str]:
        """Hash fields for a heartbeat's figures (``REPORTED`` names, None or absent: not
        reported), stamped ``now_ms``; every figure not given is cleared."""
        unknown = set(figures) - set(cls.REPORTED)
        if unknown:
            raise TypeError(f"not a reported figure: {sorted(unknown)}")
        changes = {f"reported_{name}": figures.get(name) for name in cls.REPORTED}
        return cls.patch(**changes, reported_at_ms=now_ms)

    def reported(self) -> dict[str, Any]:
        """The last heartbeat's figures by their ``REPORTED`` names (None: not reported)."""
        return {name: getattr(self, f"reported_{name}") for name in self.REPORTED}

    @property
    def known(self) -> bool:
        """Whether Redis has the server at all (an empty hash reads as not known)."""
        return bool(self.id)

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.processed if self.processed else None

    @property
    def average_response_ms(self) -> float | None:
        return self.resp_total_ms / self.processed if self.processed else None


@dataclass(frozen=True)
class PollRecord(HashRecord):
    """``tf:poll:<task_id>``: the poll of a poll-mode attempt, from the backend's answer
    to the attempt's end."""

    #: The field counting polls (incremented on its own).
    POLLS_FIELD: ClassVar[str] = "polls"

    attempt: int = 0
    #: Where its status is read (the answer's statusUrl, or the status endpoint).
    url: str = ""
    #: Polls made so far, and how many of the last ones failed in a row.
    polls: int = 0
    errors_in_row: int = 0


@dataclass(frozen=True)
class PoolMeta(HashRecord):
    """``tf:pool:<p>:meta``: the profile every server of the pool shares."""

    capabilities: str = ""  # sorted, comma-separated
    groups: str = ""  # sorted, comma-separated
    region: str = ""

    @classmethod
    def of(cls, capabilities: tuple[str, ...], groups: tuple[str, ...], region: str | None) -> PoolMeta:
        return cls(",".join(sorted(capabilities)), ",".join(sorted(groups)), region or "")

    @property
    def capability_set(self) -> frozenset[str]:
        return frozenset(filter(None, self.capabilities.split(",")))

    @property
    def group_set(self) -> frozenset[str]:
        return frozenset(filter(None, self.groups.split(",")))

    def serves(self, capabilities: tuple[str, ...] | list[str], group: str | None) -> bool:
        return set(capabilities) <= self.capability_set and (group is None or group in self.group_set)


@dataclass(frozen=True)
class TaskRecord:
    """``tf:task:<id>``: a task's ``TaskState`` plus what the dispatcher keeps beside it.
    The spec is kept as ``TaskSpec.for_hot_state`` has it: a payload over
    ``HOT_PAYLOAD_MAX_BYTES`` stays in the database, and the spec says so.

    ``task_transition.lua`` reads ``status``, ``attempt``, ``version``, ``id``,
    ``timeout_ms``, ``type``, ``server_id``, ``started_ms`` and ``updated_ms``, and
    writes ``from_status`` and ``attempt_outcome``: ``type`` and ``timeout_ms`` are
    copies of the spec so the script need not parse it.
    """

    state: TaskState
    #: The server the last failed attempt ran on: the next one avoids it if it can.
    avoid_server_id: str | None = None

    #: The field of ``avoid_server_id`` (read on its own by the dispatcher).
    AVOID_SERVER: ClassVar[str] = "avoid_server_id"
    #: The field of the version (read on its own by event streams).
    VERSION: ClassVar[str] = "version"
    #: Every hash field, and which a transition may set (``patch``).
    FIELDS: ClassVar[tuple[str, ...]] = (
        "id",
        "owner",
        "spec",
        "type",
        "timeout_ms",
        "status",
        "version",
        "attempt",
        "retry_base",
        "progress",
        "created_ms",
        "updated_ms",
        "server_id",
        "error",
        "result",
        "started_ms",
        "finished_ms",
        "from_status",
        "attempt_outcome",
        "avoid_server_id",
    )
    PATCHABLE: ClassVar[frozenset[str]] = frozenset(
        {
            "attempt",
            "retry_base",
            "progress",
            "server_id",
            "error",
            "result",
            "started_ms",
            "finished_ms",
            "avoid_server_id",
        }
    )

    @staticmethod
    def field_names() -> tuple[str, ...]:
        return TaskRecord.FIELDS

    def to_hash(self) -> dict[str, str]:
        state = self.state
        spec = state.spec
        out = {
            "id": state.id,
            "owner": state.owner,
            "spec": json.dumps(spec.for_hot_state().to_json()),
            "type": spec.type,
            "timeout_ms": str(spec.timeout_s * 1000),
            "status": state.status.value,
            "version": str(state.version),
            "attempt": str(state.attempt),
            "retry_base": str(state.retry_base),
            "progress": str(state.progress),
            "created_ms": str(state.created_ms),
            "updated_ms": str(state.updated_ms),
        }
        optional = {
            "server_id": state.server_id,
            "error": state.error,
            "result": None if state.result is None else json.dumps(state.result),
            "started_ms": state.started_ms,
            "finished_ms": state.finished_ms,
            "from_status": state.from_status,
            "attempt_outcome": state.attempt_outcome,
            "avoid_server_id": self.avoid_server_id,
        }
        out.update({k: str(v) for k, v in optional.items() if v is not None})
        return out

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> TaskRecord:
        def opt_int(name: str) -> int | None:
            return int(raw[name]) if raw.get(name) else None

        state = TaskState(
            id=raw["id"],
            owner=raw["owner"],
            spec=TaskSpec.from_json(json.loads(raw["spec"])),
            status=TaskStatus(raw["status"]),
            version=int(raw["version"]),
            created_ms=int(raw["created_ms"]),
            updated_ms=int(raw["updated_ms"]),
            attempt=int(raw.get("attempt", 0)),
            retry_base=int(raw.get("retry_base", 0)),
            progress=int(raw.get("progress", 0)),
            server_id=raw.get("server_id") or None,
            result=json.loads(raw["result"]) if raw.get("result") else None,
            error=raw.get("error") or None,
            started_ms=opt_int("started_ms"),
            finished_ms=opt_int("finished_ms"),
            from_status=TaskStatus(raw["from_status"]) if raw.get("from_status") else None,
            attempt_outcome=AttemptOutcome(raw["attempt_outcome"]) if raw.get("attempt_outcome") else None,
        )
        return cls(state, raw.get("avoid_server_id") or None)

    @classmethod
    def patch(cls, **changes: Any) -> dict[str, str]:
        """Hash fields a transition sets; ``None`` deletes a field (written as '')."""
        unknown = set(changes) - cls.PATCHABLE
        if unknown:
            raise TypeError(f"a transition cannot set {sorted(unknown)}")
        out = {}
        for name, value in changes.items():
            if value is None:
                out[name] = ""
            elif name == "result":
                out[name] = json.dumps(value)
            else:
                out[name] = str(value)
        return out
