"""Every Redis key name taskfleet uses, in one place."""

PREFIX = "tf"

#: zset task_id -> deadline_ms of its running attempt.
DEADLINES = f"{PREFIX}:deadlines"
#: hash profile_id -> '<capabilities csv>|<group>' of every waiting profile (one with a
#: task in its line, or admitted for a task about to wait; see waiting_admit.lua).
WAITING_PROFILES = f"{PREFIX}:waiting:profiles"
#: string: entries in every waiting line (kept by the waiting_*.lua scripts), so
#: /metrics and status need no call per profile.
WAITING_COUNT = f"{PREFIX}:waiting:count"
#: string: the cursor of the sweep of waiting profiles without a line (HSCAN's).
WAITING_SWEEP_CURSOR = f"{PREFIX}:waiting:sweep"
#: hash client sub -> its virtual time ("pass") in fair sharing: advanced by 1/weight
#: each time one of its waiting tasks is woken (see waiting_pop.lua).
FAIR_PASSES = f"{PREFIX}:fair:passes"
#: hash client sub -> fair-share weight (an integer >= 1; absent: 1), published from
#: ``client_limits`` by the client-limits service and read by the waiting lines.
CLIENT_WEIGHTS = f"{PREFIX}:clients:weights"
#: zset task_id -> due_ms of PENDING tasks whose next attempt waits for a backoff.
SCHEDULED = f"{PREFIX}:scheduled"
#: string set once Redis holds state rebuilt from the database; its absence means
#: Redis lost its data (or is new) and the reconcile job rebuilds it.
ALIVE = f"{PREFIX}:alive"
#: string: the task id the orphan sweep continues after (it walks all PENDING rows).
SWEEP_CURSOR = f"{PREFIX}:sweep:cursor"
#: set of task ids whose database row may be behind their hot state.
UNSYNCED = f"{PREFIX}:unsynced"
#: hash '<hour>|<scope>|<key>|<metric>' -> count: statistics not yet flushed to the
#: database (written by task_transition.lua and task_hydrate.lua; see app/store/live_counters.py).
STATS_LIVE = f"{PREFIX}:stats:live"
#: hash: the live counters cut off by a flush that has not finished (plus '__batch': id).
STATS_BATCH = f"{PREFIX}:stats:batch"
#: hash alert key -> JSON {message, since_ms} of every alert firing now.
ALERTS = f"{PREFIX}:alerts"
#: hash: dispatch-latency histogram (PENDING -> PROCESSING): bucket index -> count,
#: plus 'sum_ms' and 'count' (written by task_transition.lua).
DISPATCH_LATENCY = f"{PREFIX}:metrics:dispatch_latency"
#: zset worker hostname -> ms it last said it is alive.
WORKERS = f"{PREFIX}:workers"
#: set of registered server ids.
SERVERS = f"{PREFIX}:servers"
#: set of pool ids (a pool: servers sharing capabilities, groups and region).
POOLS = f"{PREFIX}:pools"
#: string: the load-balancing algorithm in use.
ALGORITHM = f"{PREFIX}:lb:algorithm"
#: counter: round-robin pick sequence.
RR_SEQUENCE = f"{PREFIX}:lb:seq"
#: zset server_id -> ms when its open circuit or busy period ends.
SLEEPING = f"{PREFIX}:lb:sleeping"
#: zset server_id -> ms of its next health check.
HEALTH_DUE = f"{PREFIX}:health:due"
#: zset task_id -> ms its poll-mode attempt's next poll is due (see due_claim.lua).
POLLS_DUE = f"{PREFIX}:polls:due"
#: zset task_id -> run_at ms of SCHEDULED tasks (a claimed one: ms its claim lapses; see
#: due_claim.lua). Rebuilt from the database after a Redis loss.
STARTS_DUE = f"{PREFIX}:starts:due"
#: string: the task id the deferred-task sweep continues after (it walks WAITING and
#: SCHEDULED rows).
DEFERRED_CURSOR = f"{PREFIX}:deferred:cursor"
#: zset batch id -> ms the oldest attempt of that gathering batch has waited enough.
BATCHES_DUE = f"{PREFIX}:batches:due"
#: hash task type (or '*') -> JSON of its concurrency limit's config: every limit in force.
LIMITS = f"{PREFIX}:limits"
#: string set once the concurrency limits (and the holds of running attempts) were
#: published from the database; while it is missing no slot is reserved (lb_select.lua).
LIMITS_LOADED = f"{PREFIX}:limits:loaded"


def waiting_line(profile_id: str) -> str:
    """zset (all scores 0, ordered by member): the PENDING tasks of one requirement
    profile waiting for a slot, '<len>:<client><score:16 digits><task_id>', so each
    client's tasks are one lexical range ordered by priority then age."""
    return f"{PREFIX}:waiting:{profile_id}:line"


def waiting_clients(profile_id: str) -> str:
    """zset: the clients with a task in the profile's line -> their pass (as last seen;
    a lower one than ``FAIR_PASSES`` holds is corrected by the next pop)."""
    return f"{PREFIX}:waiting:{profile_id}:clients"


def task(task_id: str) -> str:
    """hash: the hot state of one task."""
    return f"{PREFIX}:task:{task_id}"


def task_events(task_id: str) -> str:
    """stream: the task's events, ids '<version>-<n>' (app/core/events.py); capped, and
    expiring with the task's hash."""
    return f"{PREFIX}:events:{task_id}"


def attempt_alive(task_id: str, attempt: int) -> str:
    """string with a TTL: refreshed by the worker that holds the attempt's backend call."""
    return f"{PREFIX}:alive:{task_id}:{attempt}"


def server(server_id: str) -> str:
    """hash: a server's selection data (status, max_concurrent, in_flight, ...)."""
    return f"{PREFIX}:server:{server_id}"


def pool(pool_id: str) -> str:
    """hash: selection fields of the pool's servers, '<sid>|<field>' (see lib/pool.lua)."""
    return f"{PREFIX}:pool:{pool_id}"


def pool_avail(pool_id: str) -> str:
    """zset: the pool's servers that can take a slot now, scored by the algorithm."""
    return f"{PREFIX}:pool:{pool_id}:avail"


def pool_leases(pool_id: str) -> str:
    """hash: '<task_id>:<attempt>' -> '<sid>|<cost>', one field per reserved slot."""
    return f"{PREFIX}:pool:{pool_id}:leases"


def pool_fresh(pool_id: str) -> str:
    """zset: the pool's servers scored on fresh reported figures (resource-aware), by the
    ms those figures go stale."""
    return f"{PREFIX}:pool:{pool_id}:fresh"


def pool_meta(pool_id: str) -> str:
    """hash: the pool's profile: capabilities, groups, region."""
    return f"{PREFIX}:pool:{pool_id}:meta"


def pool_waiting(pool_id: str) -> str:
    """set: ids of the waiting profiles the pool's servers can serve (a profile's
    candidate pools add it when it waits; an emptied one leaves at the next pop)."""
    return f"{PREFIX}:pool:{pool_id}:waiting"


def pool_clock(pool_id: str) -> str:
    """string: the pool's virtual time in fair sharing, the pass of the last client it
    served; a client that starts waiting for it starts no lower. (Not '...:clock': the
    fault suite takes every key with 'lock' in its name for a lock that needs a TTL.)"""
    return f"{PREFIX}:pool:{pool_id}:vtime"


def capability_pools(name: str) -> str:
    """set: ids of pools whose servers offer capability ``name``."""
    return f"{PREFIX}:cap:{name}"


def group_pools(name: str) -> str:
    """set: ids of pools whose servers are in group ``name``."""
    return f"{PREFIX}:group:{name}"


def poll(task_id: str) -> str:
    """hash: the poll of a poll-mode attempt (``PollRecord``)."""
    return f"{PREFIX}:poll:{task_id}"


def batch_line(batch_id: str) -> str:
    """zset: a batch gathering for one (server, task type, mode): '<task>:<attempt>' ->
    ms it joined."""
    return f"{PREFIX}:batch:{batch_id}"


# A task type may hold any character, ':' too: the three keys of a limit differ before
# the type, so no type's key can be another's.


def limit(task_type: str) -> str:
    """hash: a concurrency limit in force ('current', and 'up_ms' / 'down_ms': when it
    last grew / shrank); absent when the type has no limit."""
    return f"{PREFIX}:limit:{task_type}"


def limit_held(task_type: str) -> str:
    """hash: lease field '<task_id>:<attempt>' -> ms reserved, one per attempt the limit
    counts as running."""
    return f"{PREFIX}:limit-held:{task_type}"


def limit_waiting(task_type: str) -> str:
    """zset: PENDING tasks held back by the limit, scored like waiting lines (priority
    then age)."""
    return f"{PREFIX}:limit-waiting:{task_type}"


def lease_field(task_id: str, attempt: int) -> str:
    return f"{task_id}:{attempt}"


def routine_claim(name: str, window: int) -> str:
    """string with a TTL: maintenance routine ``name`` was claimed for ``window`` (the
    number of its interval since the epoch); see app/store/routine_claims.py."""
    return f"{PREFIX}:tick:{name}:{window}"


def client_usage(sub: str) -> str:
    """hash: one client's submission bucket and its count of unfinished tasks
    (app/store/client_usage.py); expires when the client is idle."""
    return f"{PREFIX}:client:{sub}"


def client_admissions(sub: str) -> str:
    """zset '<admission id>|<count>' -> ms admitted: a client's submissions admitted and
    not yet settled (stored or refused)."""
    return f"{PREFIX}:client-admissions:{sub}"
