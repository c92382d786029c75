"""The server registry: register, update, maintenance, heartbeats, drain and removal."""

from __future__ import annotations

import logging
import uuid
from typing import Any
from urllib.parse import urlsplit

from app import jobs
from app.core import signatures
from app.core.balancing import Algorithm, Verdict
from app.core.clock import datetime_to_ms
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.server_health import ServerStatus
from app.core.servers import Server, ServerConfig
from app.core.urls import check_backend_url, is_forbidden_address
from app.services import waiting
from app.services.context import Context
from app.services.outcomes import fail
from app.store import servers_repo
from app.store.fleet import ServerProfile
from app.store.records import ServerRecord

log = logging.getLogger("taskfleet.servers")

#: Settings-table key of the load-balancing algorithm.
ALGORITHM_SETTING = "loadbalancer.algorithm"
#: Seconds an unregistered server gets to finish its tasks before they go elsewhere.
DRAIN_S = 30


def profile_of(server: Server) -> ServerProfile:
    return ServerProfile(
        id=server.id,
        status=server.status,
        max_concurrent=server.max_concurrent,
        capabilities=server.capabilities,
        groups=server.groups,
        region=server.region,
        weight=float(server.weight or 1),
        maintenance=server.maintenance,
        priority=server.priority,
    )


def _publish(ctx: Context, server: Server) -> None:
    """Publish the server for selection; a pool it creates learns which waiting
    profiles it can serve."""
    profile = profile_of(server)
    if ctx.fleet.put_server(profile, ctx.now_ms()):
        waiting.index_pool(ctx, profile.pool_id)


def check_endpoints(ctx: Context, endpoints: dict[str, str]) -> None:
    """Raise ``InvalidInput`` unless every endpoint is a URL taskfleet may call
    (``check_backend_url``) whose host resolves now, to no forbidden address. Names are
    checked again when called (DNS can change); a name that does not resolve is refused
    here, where the admin can fix it, rather than failing every health check."""
    for name, url in endpoints.items():
        field = f"endpoints.{name}"
        check_backend_url(url, field)
        host = (urlsplit(url).hostname or "").rstrip(".")
        try:
            addresses = ctx.backends.addresses(host)
        except OSError as exc:
            raise InvalidInput(f"{field} has a host name that does not resolve", {field: url}) from exc
        if any(is_forbidden_address(address) for address in addresses):
            raise InvalidInput(
                f"{field} resolves to a link-local, metadata or reserved address", {field: url}
            )


def register(ctx: Context, config: ServerConfig, server_id: str | None = None) -> Server:
    """Create or update a server (same id = update) and publish it for selection; its
    first health check is due at once. 422 when it would demand signed callbacks with no
    apiKey to sign them with."""
    server_id = server_id or str(uuid.uuid4())
    with ctx.db.session() as session:
        _check_callback_signature(config, servers_repo.get(session, server_id))
        server = servers_repo.put(session, server_id, config, ctx.now_ms())
    _publish(ctx, server)
    ctx.fleet.schedule_health(server.id, ctx.now_ms())
    ctx.endpoints.forget(server.id)
    return server


def _check_callback_signature(config: ServerConfig, existing: Server | None) -> None:
    """A server cannot demand signatures it has no key for (the apiKey signs them)."""
    if config.sets_callback_signature:
        demand = config.callback_signature
    else:
        demand = existing.callback_signature if existing else None
    has_key = config.api_key is not None or (existing is not None and existing.has_api_key)
    if demand == signatures.REQUIRED and not has_key:
        raise InvalidInput(
            'callbackSignature "required" needs an apiKey: callbacks are signed with it',
            {"json": {"callbackSignature": ["required needs an apiKey"]}},
        )


def get(ctx: Context, server_id: str) -> Server:
    with ctx.db.session() as session:
        server = servers_repo.get(session, server_id)
    if server is None:
        raise NotFound(f"server {server_id} not found")
    return server


def in_flight(ctx: Context, server_id: str) -> int:
    return ctx.fleet.in_flight(server_id)


def live_state(ctx: Context, server_id: str) -> ServerRecord:
    """The server's live figures from Redis: health, breaker, metrics."""
    return ctx.fleet.state(server_id)


def algorithm(ctx: Context) -> Algorithm:
    return ctx.fleet.algorithm()


def list_servers(
    ctx: Context, status: str | None = None, group: str | None = None, capability: str | None = None
) -> list[Server]:
    with ctx.db.session() as session:
        servers = servers_repo.list_all(session)
    return [
        server
        for server in servers
        if (status is None or server.status == status)
        and (group is None or group in server.groups)
        and (capability is None or capability in server.capabilities)
    ]


def set_status(ctx: Context, server_id: str, status: ServerStatus, reason: str = "") -> None:
    """Record a new status durably and in selection (``reason``: why it went offline,
    e.g. 'silent', which a heartbeat can undo, or 'health', which only checks can)."""
    with ctx.db.session() as session:
        changed = servers_repo.set_status(session, server_id, status, ctx.now_ms())
    if changed is None:
        return
    since = ctx.now_ms() if status is ServerStatus.OFFLINE and changed else None
    if since is not None:
        ctx.fleet.update(
            server_id, ctx.now_ms(), status=status, offline_reason=reason, offline_since_ms=since
        )
    else:
        ctx.fleet.update(server_id, ctx.now_ms(), status=status, offline_reason=reason)
    if changed:
        log.info("server %s is %s", server_id, status.value, extra={"server_id": server_id})


def set_maintenance(ctx: Context, server_id: str, enabled: bool) -> Server:
    """Maintenance takes a server out of selection; its running tasks finish."""
    with ctx.db.session() as session:
        server = servers_repo.set_maintenance(session, server_id, enabled, ctx.now_ms())
    if server is None:
        raise NotFound(f"server {server_id} not found")
    ctx.fleet.update(server_id, ctx.now_ms(), maintenance=enabled)
    if not enabled:
        waiting.wake(ctx, server.max_concurrent, server_id)
    return server


def heartbeat(ctx: Context, server_id: str, load: dict[str, Any]) -> Server:
    """A sign of life from the server itself, optionally with its own load figures: a
    heartbeat with any figure replaces every figure of the last one (a figure it leaves
    out is unknown from now on), so all of them share one time."""
    server = get(ctx, server_id)
    figures = {name: value for name, value in load.items() if value is not None}
    ctx.fleet.touch(server_id, ctx.now_ms(), figures)
    if figures:  # published for resource-aware selection
        ctx.fleet.sync(server_id, ctx.now_ms())
    went_silent = ctx.fleet.state(server_id).offline_reason == "silent"
    if server.status is ServerStatus.OFFLINE and went_silent:
        set_status(ctx, server_id, ServerStatus.ONLINE)
        waiting.wake(ctx, server.max_concurrent, server_id)
    return server


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


def start_drain(ctx: Context, server_id: str) -> Server:
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
        if not servers_repo.delete(session, server_id):
            return False
    ctx.fleet.remove_server(server_id)
    ctx.endpoints.forget(server_id)
    log.info("server %s removed (%s)", server_id, reason, extra={"server_id": server_id})
    return True


def finish_drain(ctx: Context, server_id: str) -> bool:
    with ctx.db.session() as session:
        server = servers_repo.get(session, server_id)
        draining = server is not None and server.status is ServerStatus.DRAINING
    return remove(ctx, server_id, "was unregistered") if draining else False


def set_algorithm(ctx: Context, algorithm: Algorithm) -> None:
    """Switch the load-balancing algorithm, durably and for every pool at once."""
    with ctx.db.session() as session:
        servers_repo.put_setting(session, ALGORITHM_SETTING, algorithm.value)
    ctx.fleet.set_algorithm(algorithm, ctx.now_ms())


def republish_all(ctx: Context) -> int:
    """Rebuild every server's selection data (and the algorithm) in Redis from the database."""
    with ctx.db.session() as session:
        chosen = servers_repo.get_setting(session, ALGORITHM_SETTING)
    if chosen:
        ctx.fleet.set_algorithm(Algorithm(chosen), ctx.now_ms())
    servers = list_servers(ctx)
    for server in servers:
        _publish(ctx, server)
        if server.status is ServerStatus.OFFLINE:
            since = datetime_to_ms(server.updated_at) or ctx.now_ms()
            ctx.fleet.update(server.id, ctx.now_ms(), offline_since_ms=since, offline_reason="health")
        ctx.fleet.schedule_health(server.id, ctx.now_ms())
    return len(servers)
