"""``taskfleet clients show|set|reset``: limits per client, the ``sub`` of its tokens
(admin)."""

from __future__ import annotations

from typing import Any

import click
from taskfleet_client import KEEP, Client, ClientLimits

from app.remote_cli import render
from app.remote_cli.connection import api_command

#: What an option takes to put a limit back to its default.
DEFAULT = "default"


class LimitValue(click.ParamType):
    """A positive number (whole if ``whole``), or ``default``: None, the default back."""

    def __init__(self, whole: bool) -> None:
        self.whole = whole
        self.name = "N|default"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is KEEP:  # the option left out
            return value
        if value is None or value == DEFAULT:
            return None
        try:
            number = int(value) if self.whole else float(value)
        except ValueError:
            number = 0
        if not number > 0:
            kind = "a positive whole number" if self.whole else "a positive number"
            self.fail(f"{value!r} is not {kind} or {DEFAULT!r}", param, ctx)
        return number


def describe(limits: ClientLimits) -> str:
    on = limits.effective
    assert on is not None
    return (
        f"client {limits.sub}: {on.submits_per_second:g} tasks/s, burst {on.burst}, "
        f"at most {on.max_unfinished} unfinished, weight {on.weight}"
    )


@click.group()
def clients() -> None:
    """Limits per client, the sub of its tokens (admin): submissions per second, burst,
    unfinished tasks, fair-share weight."""


@clients.command("show")
@click.argument("sub")
@api_command
def show(client: Client, sub: str) -> None:
    """SUB's limits as JSON: set, in force, and its usage now."""
    render.print_json(client.client_limits(sub).raw)


@clients.command("set")
@click.argument("sub")
@click.option(
    "--rate", type=LimitValue(whole=False), default=KEEP, help="Tasks per second its bucket regains."
)
@click.option(
    "--burst", type=LimitValue(whole=True), default=KEEP, help="Tasks its bucket holds (largest job)."
)
@click.option(
    "--max-unfinished",
    type=LimitValue(whole=True),
    default=KEEP,
    help="Tasks it may have unfinished at once.",
)
@click.option(
    "--weight", type=LimitValue(whole=True), default=KEEP, help="Its share of freed slots (1-1000)."
)
@api_command
def set_limits(client: Client, sub: str, rate: Any, burst: Any, max_unfinished: Any, weight: Any) -> None:
    """Change SUB's limits; an option left out keeps its value, 'default' puts the default back."""
    if all(value is KEEP for value in (rate, burst, max_unfinished, weight)):
        raise click.UsageError("give at least one of --rate, --burst, --max-unfinished and --weight")
    changed = client.set_client_limits(
        sub, submits_per_second=rate, burst=burst, max_unfinished=max_unfinished, weight=weight
    )
    click.echo(describe(changed))


@clients.command("reset")
@click.argument("sub")
@api_command
def reset(client: Client, sub: str) -> None:
    """Every limit of SUB back to the defaults."""
    click.echo(describe(client.reset_client_limits(sub)))
