"""``taskfleet limits ls|show|set|rm``: concurrency limits per task type (admin)."""

from __future__ import annotations

import click
from taskfleet_client import Client, DynamicLimit, Limit

from app.remote_cli import render
from app.remote_cli.connection import api_command

DYNAMIC_PARTS = ("initial", "max", "step", "up", "down")


def parse_dynamic(ctx: click.Context, param: click.Parameter, value: str | None) -> DynamicLimit | None:
    """``--dynamic initial,max,step,up,down`` (whole numbers; up and down in seconds)."""
    if value is None:
        return None
    parts = value.split(",")
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        numbers = []
    if len(numbers) != len(DYNAMIC_PARTS):
        raise click.BadParameter(f"{value!r} is not {','.join(DYNAMIC_PARTS)}, five whole numbers")
    return DynamicLimit.of(*numbers)


def describe(limit: Limit) -> str:
    return f"limit {limit.type}: {limit.current} now, {render.rule(limit)}"


@click.group()
def limits() -> None:
    """Concurrency limits per task type, static or scaling (admin); type * limits all tasks."""


@limits.command("ls")
@click.option("--json", "as_json", is_flag=True, help="The limits as a JSON list.")
@api_command
def list_limits(client: Client, as_json: bool) -> None:
    """Every limit: its value now, in flight, waiting, its rule and last change."""
    found = client.limits()
    if as_json:
        render.print_json([limit.raw for limit in found])
    else:
        render.console().print(render.limits_table(found))


@limits.command("show")
@click.argument("type")
@api_command
def show(client: Client, type: str) -> None:
    """The limit of TYPE as JSON."""
    render.print_json(client.limit(type).raw)


@limits.command("set")
@click.argument("type")
@click.option("--max", "max_concurrent", type=click.IntRange(1), help="A static limit: at most N at once.")
@click.option(
    "--dynamic",
    callback=parse_dynamic,
    metavar="INITIAL,MAX,STEP,UP,DOWN",
    help="A scaling limit: from INITIAL up to MAX by STEP, growing at most every UP "
    "seconds (more than twice the limit waiting), shrinking at most every DOWN seconds.",
)
@api_command
def set_limit(client: Client, type: str, max_concurrent: int | None, dynamic: DynamicLimit | None) -> None:
    """Create or replace the limit of TYPE: --max N or --dynamic ..., one of them."""
    if (max_concurrent is None) == (dynamic is None):
        raise click.UsageError("give exactly one of --max and --dynamic")
    click.echo(describe(client.set_limit(type, max_concurrent=max_concurrent, dynamic=dynamic)))


@limits.command("rm")
@click.argument("type")
@api_command
def remove(client: Client, type: str) -> None:
    """Remove the limit of TYPE: its tasks run as server slots allow."""
    client.remove_limit(type)
    click.echo(f"limit {type} removed")
