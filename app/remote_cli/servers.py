"""``taskfleet servers ls|show|add|rm|maintenance|heartbeat`` (admin)."""

from __future__ import annotations

from typing import Any

import click
from taskfleet_client import Client

from app.remote_cli import render
from app.remote_cli.connection import api_command


@click.group()
def servers() -> None:
    """Register, list, drain and maintain backend servers (admin)."""


@servers.command("ls")
@click.option("--status", type=click.Choice(["online", "degraded", "offline", "draining"]))
@click.option("--group")
@click.option("--capability")
@click.option("--json", "as_json", is_flag=True, help="The servers as a JSON list.")
@api_command
def list_servers(
    client: Client, status: str | None, group: str | None, capability: str | None, as_json: bool
) -> None:
    """Registered servers."""
    found = client.servers(status, group, capability)
    if as_json:
        render.print_json([server.raw for server in found])
    else:
        render.console().print(render.servers_table(found))


@servers.command("show")
@click.argument("server_id")
@api_command
def show(client: Client, server_id: str) -> None:
    """A server with its live metrics, as JSON."""
    render.print_json(client.server(server_id).raw)


@servers.command("add")
@click.argument("server_id")
@click.option("--predict", required=True, help="URL taskfleet POSTs tasks to.")
@click.option("--health", required=True, help="URL of its health check.")
@click.option("--status-url", help="Poll mode: {status}/<job> gives a job's state.")
@click.option("--cancel-url", help="POSTed {task_id} when a running task is cancelled.")
@click.option("--name", help="A display name [the id].")
@click.option("--cap", "capabilities", multiple=True, help="A capability (repeatable).")
@click.option("--group", "groups", multiple=True, help="A group (repeatable).")
@click.option("--max-concurrent", type=int, help="Tasks at once [10].")
@click.option("--region")
@click.option("--priority", type=int)
@click.option("--weight", type=int)
@click.option("--timeout", "timeout_seconds", type=int, help="Seconds a call may take at most.")
@click.option(
    "--api-key",
    envvar="TASKFLEET_SERVER_API_KEY",
    help="Bearer key taskfleet sends to it [TASKFLEET_SERVER_API_KEY: keeps it out of shell history].",
)
@click.option(
    "--callback-signature",
    type=click.Choice(["required", "optional", "default"]),
    help="required: its callbacks must be signed with the apiKey; optional: the URL token "
    "suffices; default: the deployment's CALLBACK_SIGNATURE [unchanged; default for a new server].",
)
@api_command
def add(
    client: Client,
    server_id: str,
    predict: str,
    health: str,
    status_url: str | None,
    cancel_url: str | None,
    name: str | None,
    capabilities: tuple[str, ...],
    groups: tuple[str, ...],
    callback_signature: str | None,
    **fields: Any,
) -> None:
    """Register SERVER_ID, or update it if it exists."""
    endpoints = {"predict": predict, "health": health, "status": status_url, "cancel": cancel_url}
    if callback_signature == "default":
        fields["extra"] = {"callbackSignature": None}
    elif callback_signature is not None:
        fields["callback_signature"] = callback_signature
    server = client.register_server(
        name or server_id,
        {key: url for key, url in endpoints.items() if url},
        id=server_id,
        capabilities=list(capabilities),
        groups=list(groups),
        **fields,
    )
    click.echo(f"server {server.id} registered: {server.status}, {server.max_concurrent} slots")


@servers.command("rm")
@click.argument("server_id")
@api_command
def remove(client: Client, server_id: str) -> None:
    """Drain SERVER_ID: no new tasks; removed once what runs there is done."""
    server = client.remove_server(server_id)
    click.echo(f"server {server.id}: {server.status}")


@servers.command("maintenance")
@click.argument("server_id")
@click.argument("state", type=click.Choice(["on", "off"]))
@api_command
def maintenance(client: Client, server_id: str, state: str) -> None:
    """Take SERVER_ID out of selection (on; running tasks finish) or back (off)."""
    client.set_maintenance(server_id, state == "on")
    click.echo(f"server {server_id}: maintenance {state}")


@servers.command("heartbeat")
@click.argument("server_id")
@click.option("--in-flight", type=int)
@click.option("--queue-depth", type=int)
@click.option("--gpu", "gpu_utilization", type=float, help="GPU utilisation, 0-1.")
@api_command
def heartbeat(client: Client, server_id: str, **load: Any) -> None:
    """Send a sign of life for SERVER_ID."""
    server = client.heartbeat(server_id, **{key: value for key, value in load.items() if value is not None})
    click.echo(f"server {server.id}: {server.status}")
