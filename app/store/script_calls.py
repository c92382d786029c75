"""One small frozen dataclass per Lua script: the call's KEYS and ARGV, by name.

Each field is a ``KEYS`` entry (``key()``) or an ``ARGV`` entry (``arg()``), named as in
the script's header and declared in the header's order; a script with a variable-length
tail (repeating keys or field/value pairs) has one ``keys_tail()`` or ``args_tail()``
field, flattened after the fixed entries. ``tests/store/test_script_contracts.py`` holds
every class against its script's header, so a caller cannot pass an argument in the
wrong place without a test failing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

#: The metadata entry that says what a field is (one of the four roles below).
ROLE = "lua"
KEY, ARG, KEYS_TAIL, ARGS_TAIL = "key", "arg", "keys_tail", "args_tail"


def key() -> Any:
    """A field that is one ``KEYS`` entry."""
    return dataclasses.field(metadata={ROLE: KEY})


def arg() -> Any:
    """A field that is one ``ARGV`` entry."""
    return dataclasses.field(metadata={ROLE: ARG})


def keys_tail() -> Any:
    """A field that is the variable-length tail of ``KEYS`` (flattened last)."""
    return dataclasses.field(metadata={ROLE: KEYS_TAIL})


def args_tail() -> Any:
    """A field that is the variable-length tail of ``ARGV`` (flattened last)."""
    return dataclasses.field(metadata={ROLE: ARGS_TAIL})


class Layout(NamedTuple):
    """The names of a call's entries: fixed KEYS, KEYS tail, fixed ARGV, ARGV tail."""

    keys: tuple[str, ...]
    keys_tail: str | None
    args: tuple[str, ...]
    args_tail: str | None


#: Script name -> its call class (filled as the classes below are defined).
CALLS: dict[str, type[ScriptCall]] = {}
#: Call class -> the names of its entries (filled on first use).
_LAYOUTS: dict[type[ScriptCall], Layout] = {}


def _flatten(tail: Iterable[Any]) -> list[Any]:
    """A tail's entries: a mapping gives its (name, value) pairs, and a tuple entry (a
    repeating group such as a pool's three keys) gives its members, in order."""
    items = tail.items() if isinstance(tail, Mapping) else tail
    out: list[Any] = []
    for item in items:
        if isinstance(item, tuple):
            out.extend(item)
        else:
            out.append(item)
    return out


def _read_layout(cls: type[ScriptCall]) -> Layout:
    """The entry names of a call class, from its fields."""
    by_role: dict[str, list[str]] = {KEY: [], ARG: [], KEYS_TAIL: [], ARGS_TAIL: []}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        role = f.metadata.get(ROLE)
        if role not in by_role:
            raise TypeError(f"{cls.__name__}.{f.name} is neither key(), arg() nor a tail")
        by_role[role].append(f.name)
    for role in (KEYS_TAIL, ARGS_TAIL):
        if len(by_role[role]) > 1:
            raise TypeError(f"{cls.__name__} has more than one {role}: {by_role[role]}")
    return Layout(
        keys=tuple(by_role[KEY]),
        keys_tail=next(iter(by_role[KEYS_TAIL]), None),
        args=tuple(by_role[ARG]),
        args_tail=next(iter(by_role[ARGS_TAIL]), None),
    )


class ScriptCall:
    """Base of the call classes: ``SCRIPT`` names the script, fields hold its entries."""

    SCRIPT: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.SCRIPT in CALLS:
            raise TypeError(f"{cls.__name__}: {CALLS[cls.SCRIPT].__name__} already calls {cls.SCRIPT}")
        CALLS[cls.SCRIPT] = cls

    @classmethod
    def layout(cls) -> Layout:
        """The entry names of this call, in field order (read once per class)."""
        layout = _LAYOUTS.get(cls)
        if layout is None:
            layout = _LAYOUTS[cls] = _read_layout(cls)
        return layout

    def keys(self) -> list[str]:
        """``KEYS``: the fixed entries in field order, then the tail."""
        layout = self.layout()
        out = [getattr(self, name) for name in layout.keys]
        if layout.keys_tail:
            out += _flatten(getattr(self, layout.keys_tail))
        return out

    def args(self) -> list[Any]:
        """``ARGV``: the fixed entries in field order, then the tail."""
        layout = self.layout()
        out = [getattr(self, name) for name in layout.args]
        if layout.args_tail:
            out += _flatten(getattr(self, layout.args_tail))
        return out


def call_class(script: str) -> type[ScriptCall]:
    """The call class of ``lua/<script>.lua``."""
    try:
        return CALLS[script]
    except KeyError:
        raise LookupError(f"no call class in app.store.script_calls for script {script!r}") from None


# -- the load balancer (lb_*.lua, with lua/lib/pool.lua) ---------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class SelectCall(ScriptCall):
    """``lb_select.lua``: choose a server among candidate pools and reserve its slot."""

    SCRIPT: ClassVar[str] = "lb_select"

    rr_sequence: str = key()
    algorithm_key: str = key()
    limits_loaded: str = key()
    type_limit: str = key()
    type_held: str = key()
    all_limit: str = key()
    all_held: str = key()
    #: Per candidate pool, region first: (pool hash, avail zset, leases hash, fresh zset).
    pools: Sequence[tuple[str, str, str, str]] = keys_tail()
    lease: str = arg()
    cost: int = arg()
    seed: int = arg()
    in_region: int = arg()
    avoid: str = arg()
    penalty_ms: float = arg()
    per_pool: int = arg()
    now_ms: int = arg()


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReleaseCall(ScriptCall):
    """``lb_release.lua``: end an attempt's hold on a server's slot, record the outcome."""

    SCRIPT: ClassVar[str] = "lb_release"

    pool: str = key()
    avail: str = key()
    leases: str = key()
    task: str = key()
    server: str = key()
    sleeping: str = key()
    algorithm_key: str = key()
    fresh_set: str = key()
    type_held: str = key()
    all_held: str = key()
    lease: str = arg()
    attempt: int = arg()
    server_id: str = arg()
    outcome: str = arg()
    duration_ms: int = arg()
    now_ms: int = arg()
    ewma_alpha: float = arg()
    circuit_failures: int = arg()
    circuit_open_ms: int = arg()
    busy_ms: int = arg()
    penalty_ms: float = arg()
    min_age_ms: int = arg()
    hold: str = arg()


@dataclasses.dataclass(frozen=True, kw_only=True)
class SyncCall(ScriptCall):
    """``lb_sync.lua``: publish a server's selection fields into its pool."""

    SCRIPT: ClassVar[str] = "lb_sync"

    pool: str = key()
    avail: str = key()
    server: str = key()
    sleeping: str = key()
    algorithm_key: str = key()
    fresh_set: str = key()
    server_id: str = arg()
    now_ms: int = arg()
    penalty_ms: float = arg()


@dataclasses.dataclass(frozen=True, kw_only=True)
class RescoreCall(ScriptCall):
    """``lb_rescore.lua``: re-score a pool's avail zset for a newly chosen algorithm."""

    SCRIPT: ClassVar[str] = "lb_rescore"

    pool: str = key()
    avail: str = key()
    fresh_set: str = key()
    alg: str = arg()
    penalty_ms: float = arg()
    now_ms: int = arg()


@dataclasses.dataclass(frozen=True, kw_only=True)
class RestoreCall(ScriptCall):
    """``lb_restore.lua``: put back a slot the database says is in use."""

    SCRIPT: ClassVar[str] = "lb_restore"

    pool: str = key()
    avail: str = key()
    leases: str = key()
    algorithm_key: str = key()
    fresh_set: str = key()
    type_held: str = key()
    type_limit: str = key()
    all_held: str = key()
    all_limit: str = key()
    lease: str = arg()
    server_id: str = arg()
    cost: int = arg()
    now_ms: int = arg()
    penalty_ms: float = arg()


# -- task hot state ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransitionCall(ScriptCall):
    """``task_transition.lua``: compare-and-set one task's state."""

    SCRIPT: ClassVar[str] = "task_transition"

    task: str = key()
    deadlines: str = key()
    stats: str = key()
    latency: str = key()
    unsynced: str = key()
    events: str = key()
    sources: str = arg()
    target: str = arg()
    expected_attempt: str = arg()
    now_ms: str = arg()
    is_final: str = arg()
    attempt_outcome: str = arg()
    maxlen: int = arg()
    #: Field -> value to set; an empty value deletes the field.
    fields: Mapping[str, str] = args_tail()


@dataclasses.dataclass(frozen=True, kw_only=True)
class ChunkCall(ScriptCall):
    """``task_chunk.lua``: append chunks of a running attempt's output to its events."""

    SCRIPT: ClassVar[str] = "task_chunk"

    task: str = key()
    events: str = key()
    attempt: int = arg()
    maxlen: int = arg()
    #: The chunks' data, JSON text each, in order.
    chunks: Sequence[str] = args_tail()


@dataclasses.dataclass(frozen=True, kw_only=True)
class HydrateCall(ScriptCall):
    """``task_hydrate.lua``: write a task's hot state unless Redis has it."""

    SCRIPT: ClassVar[str] = "task_hydrate"

    task: str = key()
    deadlines: str = key()
    stats: str = key()
    events: str = key()
    ttl_ms: str = arg()
    deadline_ms: str = arg()
    new_task_type: str = arg()
    created_ms: str = arg()
    maxlen: int = arg()
    #: Field -> value of the task hash (must include 'id').
    fields: Mapping[str, str] = args_tail()


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeferCall(ScriptCall):
    """``task_defer.lua``: count a new SCHEDULED or WAITING task; schedule its start."""

    SCRIPT: ClassVar[str] = "task_defer"

    starts: str = key()
    stats: str = key()
    task_id: str = arg()
    due_ms: str = arg()
    task_type: str = arg()
    created_ms: int = arg()


@dataclasses.dataclass(frozen=True, kw_only=True)
class SyncedCall(ScriptCall):
    """``task_synced.lua``: the database holds a task's version; expire it if final."""

    SCRIPT: ClassVar[str] = "task_synced"

    task: str = key()
    unsynced: str = key()
    events: str = key()
    version: int = arg()
    ttl_ms: int = arg()
    task_id: str = arg()
    final_statuses: str = arg()


# -- waiting lines and statistics --------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class WaitingParkCall(ScriptCall):
    """``waiting_park.lua``: line up one client's tasks of one profile."""

    SCRIPT: ClassVar[str] = "waiting_park"

    profiles: str = key()
    line: str = key()
    clients: str = key()
    passes: str = key()
    count_key: str = key()
    #: (waiting-profiles set, clock) per candidate pool.
    pools: Sequence[tuple[str, str]] = keys_tail()
    profile_id: str = arg()
    profile_text: str = arg()
    client: str = arg()
    #: (member, the same task's member with its other score) per task.
    members: Sequence[tuple[str, str]] = args_tail()


@dataclasses.dataclass(frozen=True, kw_only=True)
class WaitingPopCall(ScriptCall):
    """``waiting_pop.lua``: take the best waiting tasks a pool serves, fairly."""

    SCRIPT: ClassVar[str] = "waiting_pop"

    passes: str = key()
    weights: str = key()
    profiles: str = key()
    count_key: str = key()
    index: str = key()
    clock: str = key()
    #: (line, clients zset) per profile.
    lines: Sequence[tuple[str, str]] = keys_tail()
    count: int = arg()
    max_fixes: int = arg()
    advance: int = arg()
    profile_ids: Sequence[str] = args_tail()


@dataclasses.dataclass(frozen=True, kw_only=True)
class WaitingUnparkCall(ScriptCall):
    """``waiting_unpark.lua``: take entries of tasks no longer PENDING out of a line."""

    SCRIPT: ClassVar[str] = "waiting_unpark"

    profiles: str = key()
    line: str = key()
    clients: str = key()
    count_key: str = key()
    indexes: Sequence[str] = keys_tail()
    profile_id: str = arg()
    client: str = arg()
    members: Sequence[str] = args_tail()


@dataclasses.dataclass(frozen=True, kw_only=True)
class WaitingSweepCall(ScriptCall):
    """``waiting_sweep.lua``: forget profiles that have no line."""

    SCRIPT: ClassVar[str] = "waiting_sweep"

    profiles: str = key()
    lines: Sequence[str] = keys_tail()
    profile_ids: Sequence[str] = args_tail()


@dataclasses.dataclass(frozen=True, kw_only=True)
class WaitingAdmitCall(ScriptCall):
    """``waiting_admit.lua``: admit new waiting profiles under the cap, all or none."""

    SCRIPT: ClassVar[str] = "waiting_admit"

    profiles: str = key()
    max_profiles: int = arg()
    #: (profile id, profile text) per profile.
    entries: Sequence[tuple[str, str]] = args_tail()


@dataclasses.dataclass(frozen=True, kw_only=True)
class StatsCutCall(ScriptCall):
    """``stats_cut.lua``: hand the live counters to a flush as a batch."""

    SCRIPT: ClassVar[str] = "stats_cut"

    live: str = key()
    batch: str = key()
    batch_id: str = arg()
    now_ms: int = arg()


@dataclasses.dataclass(frozen=True, kw_only=True)
class StatsDropCall(ScriptCall):
    """``stats_drop.lua``: delete a flushed batch if it is still the one named."""

    SCRIPT: ClassVar[str] = "stats_drop"

    batch: str = key()
    batch_id: str = arg()


# -- schedules and batches to backends ---------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class DueClaimCall(ScriptCall):
    """``due_claim.lua``: claim the due members of a schedule for a while."""

    SCRIPT: ClassVar[str] = "due_claim"

    schedule: str = key()
    now_ms: int = arg()
    lease_ms: int = arg()
    limit: int = arg()


@dataclasses.dataclass(frozen=True, kw_only=True)
class BatchJoinCall(ScriptCall):
    """``batch_join.lua``: add an attempt to a gathering batch; take it when full."""

    SCRIPT: ClassVar[str] = "batch_join"

    line: str = key()
    due: str = key()
    member: str = arg()
    batch_id: str = arg()
    now_ms: int = arg()
    max_size: int = arg()
    max_wait_ms: int = arg()


@dataclasses.dataclass(frozen=True, kw_only=True)
class BatchTakeCall(ScriptCall):
    """``batch_take.lua``: take the oldest attempts of a batch whose wait is over."""

    SCRIPT: ClassVar[str] = "batch_take"

    line: str = key()
    due: str = key()
    batch_id: str = arg()
    max_size: int = arg()
    max_wait_ms: int = arg()


# -- per-client limits -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClientAdmitCall(ScriptCall):
    """``client_admit.lua``: take a submission's tokens and room under the cap, or refuse."""

    SCRIPT: ClassVar[str] = "client_admit"

    usage: str = key()
    admissions: str = key()
    now_ms: int = arg()
    rate_per_s: float = arg()
    burst: int = arg()
    max_unfinished: int = arg()
    count: int = arg()
    admission: str = arg()
    ttl_ms: int = arg()
    own_base: int = arg()
    own_mark: int = arg()


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClientSettleCall(ScriptCall):
    """``client_settle.lua``: an admitted submission ended, its tasks stored or not."""

    SCRIPT: ClassVar[str] = "client_settle"

    usage: str = key()
    admissions: str = key()
    admission: str = arg()
    count: int = arg()
    stored: int = arg()


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClientCountBeginCall(ScriptCall):
    """``client_count_begin.lua``: start a recount of a client's unfinished tasks."""

    SCRIPT: ClassVar[str] = "client_count_begin"

    usage: str = key()
    now_ms: int = arg()
    lease_ms: int = arg()
    min_interval_ms: int = arg()
    forced: int = arg()
    ttl_ms: int = arg()


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClientCountEndCall(ScriptCall):
    """``client_count_end.lua``: install a recount unless a later one superseded it."""

    SCRIPT: ClassVar[str] = "client_count_end"

    usage: str = key()
    admissions: str = key()
    generation: int = arg()
    base: int = arg()
    mark: int = arg()
    now_ms: int = arg()
    stale_before_ms: int = arg()
    ttl_ms: int = arg()
