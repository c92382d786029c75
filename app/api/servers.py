"""Server registry endpoints (admin; a server's own heartbeats also from the server role)."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from app.api.auth import current_caller, requires
from app.api.schemas import (
    HeartbeatIn,
    MaintenanceIn,
    ServerDetailOut,
    ServerIn,
    ServerList,
    ServerListQuery,
    ServerOut,
)
from app.api.views import server_metrics_view, server_view
from app.core.errors import Forbidden
from app.core.servers import Server, ServerConfig
from app.extensions import current_context as ctx
from app.services import servers

bp = APIBlueprint("servers", __name__, url_prefix="/api", tag="Servers")
BEARER = {"security": "BearerAuth"}


def _with_metrics(server: Server) -> dict[str, Any]:
    context = ctx()
    in_flight = servers.in_flight(context, server.id)
    view = server_view(server, in_flight)
    view["metrics"] = server_metrics_view(servers.live_state(context, server.id), in_flight)
    return view


def _detail(server_id: str) -> dict[str, Any]:
    return _with_metrics(servers.get(ctx(), server_id))


@bp.post("/servers")
@requires("admin")
@bp.input(ServerIn, arg_name="data")
@bp.output(ServerOut, status_code=201)
@bp.doc(description="Register a server; the same id again updates it.", **BEARER)
def register_server(data: dict[str, Any]) -> Any:
    servers.check_endpoints(ctx(), data["endpoints"])
    server = servers.register(ctx(), ServerConfig.from_input(data), data.get("id"))
    return server_view(server, servers.in_flight(ctx(), server.id))


@bp.get("/servers")
@requires("admin")
@bp.input(ServerListQuery, location="query", arg_name="query")
@bp.output(ServerList)
@bp.doc(**BEARER)
def list_servers(query: dict[str, Any]) -> Any:
    context = ctx()
    found = servers.list_servers(context, query["status"], query["group"], query["capability"])
    if query["metrics"]:
        return {"items": [_with_metrics(server) for server in found]}
    return {"items": [server_view(server, servers.in_flight(context, server.id)) for server in found]}


@bp.get("/servers/<server_id>")
@requires("admin")
@bp.output(ServerDetailOut)
@bp.doc(description="The server with live metrics.", responses={404: "No such server"}, **BEARER)
def get_server(server_id: str) -> Any:
    return _detail(server_id)


@bp.delete("/servers/<server_id>")
@requires("admin")
@bp.output(ServerOut, status_code=202)
@bp.doc(
    description="Drain: no new tasks; after 30 s what still runs is retried elsewhere "
    "and the server is removed.",
    responses={404: "No such server"},
    **BEARER,
)
def unregister_server(server_id: str) -> Any:
    server = servers.start_drain(ctx(), server_id)
    return server_view(server, servers.in_flight(ctx(), server_id))


@bp.post("/servers/<server_id>/heartbeat")
@requires("server", "admin")
@bp.input(HeartbeatIn, arg_name="load")
@bp.output(ServerDetailOut)
@bp.doc(
    description="A server's own report: a token of the server role may beat only the server "
    "whose id is its sub; an admin may beat any server.",
    responses={403: "A server token for another server", 404: "No such server"},
    **BEARER,
)
def heartbeat(server_id: str, load: dict[str, Any]) -> Any:
    caller = current_caller()
    if not caller.is_admin and caller.subject != server_id:
        raise Forbidden("a server token may beat only the server whose id is its sub")
    servers.heartbeat(ctx(), server_id, load)
    return _detail(server_id)


@bp.put("/servers/<server_id>/maintenance")
@requires("admin")
@bp.input(MaintenanceIn, arg_name="data")
@bp.output(ServerDetailOut)
@bp.doc(responses={404: "No such server"}, **BEARER)
def maintenance(server_id: str, data: dict[str, Any]) -> Any:
    servers.set_maintenance(ctx(), server_id, data["enabled"])
    return _detail(server_id)
