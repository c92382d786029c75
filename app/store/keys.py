"""Every Redis key name taskfleet uses, in one place."""

PREFIX = "tf"

#: zset task_id -> deadline_ms of its running attempt.
DEADLINES = f"{PREFIX}:deadlines"
#: zset task_id -> order score of PENDING tasks waiting for a free slot.
WAITING = f"{PREFIX}:waiting"
#: set of registered server ids.
SERVERS = f"{PREFIX}:servers"


def task(task_id: str) -> str:
    """hash: the hot state of one task."""
    return f"{PREFIX}:task:{task_id}"


def server(server_id: str) -> str:
    """hash: a server's selection data (status, max_concurrent, in_flight, ...)."""
    return f"{PREFIX}:server:{server_id}"


def server_leases(server_id: str) -> str:
    """hash: '<task_id>:<attempt>' -> slot cost, one field per reserved slot."""
    return f"{PREFIX}:server:{server_id}:leases"


def capability(name: str) -> str:
    """set: ids of servers that offer capability ``name``."""
    return f"{PREFIX}:cap:{name}"


def lease_field(task_id: str, attempt: int) -> str:
    return f"{task_id}:{attempt}"
