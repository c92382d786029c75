"""Server registry endpoints (admin)."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from app.api.auth import requires
from app.api.context import ctx
from app.api.schemas import ServerIn, ServerList, ServerOut
from app.api.views import server_view
from app.core.urls import check_backend_url
from app.services import servers

bp = APIBlueprint("servers", __name__, url_prefix="/api", tag="Servers")
BEARER = {"security": "BearerAuth"}


@bp.post("/servers")
@bp.input(ServerIn, arg_name="data")
@bp.output(ServerOut, status_code=201)
@bp.doc(description="Register a server; the same id again updates it.", **BEARER)
@requires("admin")
def register_server(data: dict[str, Any]) -> Any:
    for name, url in data["endpoints"].items():
        check_backend_url(url, f"endpoints.{name}")
    row = servers.register(ctx(), data)
    return server_view(row, ctx().fleet.in_flight(row.id))


@bp.get("/servers")
@bp.output(ServerList)
@bp.doc(**BEARER)
@requires("admin")
def list_servers() -> Any:
    context = ctx()
    rows = servers.list_servers(context)
    return {"items": [server_view(row, context.fleet.in_flight(row.id)) for row in rows]}
