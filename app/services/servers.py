"""Registering backend servers and looking up how to call them."""

from __future__ import annotations

import uuid
from typing import Any

from app.core.clock import ms_to_datetime
from app.services.context import Context
from app.store import servers_repo
from app.store.models import ServerRow


def register(ctx: Context, config: dict[str, Any]) -> ServerRow:
    """Create or update a server (same id = update) and publish it for selection."""
    now = ms_to_datetime(ctx.now_ms())
    server_id = config.get("id") or str(uuid.uuid4())
    with ctx.db.session() as session:
        row = servers_repo.get(session, server_id)
        previous_caps: list[str] = []
        if row is None:
            row = ServerRow(id=server_id, created_at=now, status="online")
            session.add(row)
        else:
            previous_caps = list(row.capabilities or [])
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
    ctx.fleet.put_server(row.id, row.status, row.max_concurrent, row.capabilities, previous_caps)
    ctx.endpoints.forget(row.id)
    return row


def list_servers(ctx: Context) -> list[ServerRow]:
    with ctx.db.session() as session:
        return servers_repo.list_all(session)


def republish_all(ctx: Context) -> int:
    """Rebuild every server's selection data in Redis from the database."""
    servers = list_servers(ctx)
    for row in servers:
        ctx.fleet.put_server(row.id, row.status, row.max_concurrent, row.capabilities)
    return len(servers)
