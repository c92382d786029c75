"""The server registry: register, update, maintenance, heartbeats, drain and removal."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from app import jobs
from app.core.balancing import Algorithm, Verdict
from app.core.clock import datetime_to_ms, ms_to_datetime
from app.core.errors import Conflict, NotFound
from app.core.server_health import ServerStatus
from app.services import waiting
from app.services.context import Context
from app.services.outcomes import fail
from app.store import servers_repo
from app.store.fleet import ServerProfile
from app.store.models import ServerRow

log = logging.getLogger("taskfleet.servers")

#: Settings-table key of the load-balancing algorithm.
ALGORITHM_SETTING = "loadbalancer.algorithm"
#: Seconds an unregistered server gets to finish its tasks before they go elsewhere.
DRAIN_S = 30


def profile_of(row: ServerRow) -> ServerProfile:
    return ServerProfile(
        id=row.id,
        status=row.status,
        max_concurrent=row.max_concurrent,
        capabilities=tuple(row.capabilities or ()),
        groups=tuple(row.groups or ()),
        region=row.region,
        weight=float(row.weight or 1),
        maintenance=row.maintenance,
    )


def register(ctx: Context, config: dict[str, Any]) -> ServerRow:
    """Create or update a server (same id = update) and publish it for selection; its
    first health check is due at once."""
    now = ms_to_datetime(ctx.now_ms())
    server_id = config.get("id") or str(uuid.uuid4())
    with ctx.db.session() as session:
        row = servers_repo.get(session, server_id)
        if row is None:
            row = ServerRow(id=server_id, created_at=now, status=ServerStatus.ONLINE.value, maintenance=False)
            session.add(row)
        elif row.status == ServerStatus.DRAINING.value:
            row.status = ServerStatus.ONLINE.value
        row.name = config["name"]
        row.endpoints = config["endpoints"]
        if "api_key" in config:
            row.api_key = config["api_key"]
        row.max_concurrent = config.get("max_concurrent", 10)
        row.capabilities = sorted(set(config.get("capabilities", [])))
        row.groups = sorted(set(config.get("groups", [])))
        row.priority = config.get("priority", 0)
        row.region = config.get("region")
        row.weight = config.get("weight")
        row.updated_at = now
    ctx.fleet.put_server(profile_of(row), ctx.now_ms())
    ctx.fleet.schedule_health(row.id, ctx.now_ms())
    ctx.endpoints.forget(row.id)
    return row


def get(ctx: Context, server_id: str) -> ServerRow:
    with ctx.db.session() as session:
        row = servers_repo.get(session, server_id)
    if row is None:
        raise NotFound(f"server {server_id} not found")
    return row


def in_flight(ctx: Context, server_id: str) -> int:
    return ctx.fleet.in_flight(server_id)


def live_state(ctx: Context, server_id: str) -> dict[str, str]:
    """The server's live figures from Redis: health, breaker, metrics."""
    return ctx.fleet.state(server_id)


def algorithm(ctx: Context) -> Algorithm:
    return ctx.fleet.algorithm()


def list_servers(
    ctx: Context, status: str | None = None, group: str | None = None, capability: str | None = None
) -> list[ServerRow]:
    with ctx.db.session() as session:
        rows = servers_repo.list_all(session)
    return [
        row
        for row in rows
        if (status is None or row.status == status)
        and (group is None or group in (row.groups or []))
        and (capability is None or capability in (row.capabilities or []))
    ]


def set_status(ctx: Context, server_id: str, status: ServerStatus, reason: str = "") -> None:
    """Record a new status durably and in selection (``reason``: why it went offline,
    e.g. 'silent', which a heartbeat can undo, or 'health', which only checks can)."""
    with ctx.db.session() as session:
        row = servers_repo.get(session, server_id)
        if row is None:
            return
        changed = row.status != status.value
        row.status = status.value
        row.updated_at = ms_to_datetime(ctx.now_ms())
    extra: dict[str, object] = {"offline_reason": reason}
    if status is ServerStatus.OFFLINE and changed:
        extra["offline_since_ms"] = ctx.now_ms()
    ctx.fleet.update(server_id, ctx.now_ms(), status=status.value, **extra)
    if changed:
        log.info("server %s is %s", server_id, status.value, extra={"server_id": server_id})


def set_maintenance(ctx: Context, server_id: str, enabled: bool) -> ServerRow:
    """Maintenance takes a server out of selection; its running tasks finish."""
    with ctx.db.session() as session:
        row = servers_repo.get(session, server_id)
        if row is None:
            raise NotFound(f"server {server_id} not found")
        row.maintenance = enabled
        row.updated_at = ms_to_datetime(ctx.now_ms())
    ctx.fleet.update(server_id, ctx.now_ms(), maintenance="1" if enabled else "0")
    if not enabled:
        waiting.wake(ctx, row.max_concurrent, server_id)
    return row


def heartbeat(ctx: Context, server_id: str, load: dict[str, Any]) -> ServerRow:
    """A sign of life from the server itself, optionally with its own load figures."""
    row = get(ctx, server_id)
    figures = {f"reported_{k}": v for k, v in load.items() if v is not None}
    ctx.fleet.touch(server_id, ctx.now_ms(), **figures)
    went_silent = ctx.fleet.state(server_id).get("offline_reason") == "silent"
    if row.status == ServerStatus.OFFLINE.value and went_silent:
        set_status(ctx, server_id, ServerStatus.ONLINE)
        waiting.wake(ctx, row.max_concurrent, server_id)
    return row


def evacuate(ctx: Context, server_id: str, reason: str) -> int:
    """Retry elsewhere every task running on the server (it went offline or away).
    The server is not blamed in its metrics: it is gone, not failing requests."""
    moved = 0
    for task_id, attempt, _cost in ctx.fleet.leases(server_id):
        try:
            fail(
                ctx,
                task_id,
                attempt,
                f"server {server_id} {reason}",
                verdict=Verdict.NONE,
                error_type="server_gone",
            )
            moved += 1
        except (Conflict, NotFound):
            continue
    return moved


def start_drain(ctx: Context, server_id: str) -> ServerRow:
    """Unregister: no new tasks from now on; what still runs after ``DRAIN_S`` is
    retried elsewhere and the server is removed (``finish_drain``)."""
    get(ctx, server_id)
    set_status(ctx, server_id, ServerStatus.DRAINING)
    ctx.queue.call_later(jobs.FINISH_DRAIN, [server_id], DRAIN_S)
    return get(ctx, server_id)


def remove(ctx: Context, server_id: str, reason: str) -> bool:
    """Retry its tasks elsewhere and delete the server everywhere. False if unknown."""
    evacuate(ctx, server_id, reason)
    with ctx.db.session() as session:
        row = servers_repo.get(session, server_id)
        if row is None:
            return False
        session.delete(row)
    ctx.fleet.remove_server(server_id)
    ctx.endpoints.forget(server_id)
    log.info("server %s removed (%s)", server_id, reason, extra={"server_id": server_id})
    return True


def finish_drain(ctx: Context, server_id: str) -> bool:
    with ctx.db.session() as session:
        row = servers_repo.get(session, server_id)
        draining = row is not None and row.status == ServerStatus.DRAINING.value
    return remove(ctx, server_id, "was unregistered") if draining else False


def set_algorithm(ctx: Context, algorithm: Algorithm) -> None:
    """Switch the load-balancing algorithm, durably and for every pool at once."""
    with ctx.db.session() as session:
        servers_repo.put_setting(session, ALGORITHM_SETTING, algorithm.value)
    ctx.fleet.set_algorithm(algorithm)


def republish_all(ctx: Context) -> int:
    """Rebuild every server's selection data (and the algorithm) in Redis from the database."""
    with ctx.db.session() as session:
        chosen = servers_repo.get_setting(session, ALGORITHM_SETTING)
    if chosen:
        ctx.fleet.set_algorithm(Algorithm(chosen))
    servers = list_servers(ctx)
    for row in servers:
        ctx.fleet.put_server(profile_of(row), ctx.now_ms())
        if row.status == ServerStatus.OFFLINE.value:
            since = datetime_to_ms(row.updated_at) or ctx.now_ms()
            ctx.fleet.update(row.id, ctx.now_ms(), offline_since_ms=since, offline_reason="health")
        ctx.fleet.schedule_health(row.id, ctx.now_ms())
    return len(servers)
