"""``taskfleet stats``: totals and the last 24 hours as sparklines (admin)."""

from __future__ import annotations

from datetime import datetime

import click
from taskfleet_client import Client, Hour, Stats

from app.remote_cli import render
from app.remote_cli.connection import api_command


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def summary(stats: Stats, hours: list[Hour]) -> list[str]:
    """The totals, then one block per hour for the last 24 hours (oldest first)."""
    submitted, failed = [hour.tasks for hour in hours], [hour.failed for hour in hours]
    peak = max(submitted, default=0)
    outcomes = (
        f"{stats.successful_tasks:,} completed, {stats.failed_tasks:,} failed "
        f"({stats.timed_out_tasks:,} timed out), {stats.cancelled_tasks:,} cancelled, "
        f"{stats.retried_tasks:,} retries"
    )
    rows = [
        ("tasks", f"{stats.total_tasks:,} submitted"),
        ("", outcomes),
        ("now", f"{stats.pending_tasks:,} pending, {stats.processing_tasks:,} processing"),
        ("servers", f"{stats.server_count:,}"),
        ("average", _ms(stats.average_processing_time)),
        ("24 h", f"{render.sparkline(submitted)}  submitted ({sum(submitted):,}, peak {peak:,}/h)"),
        ("", f"{render.sparkline(failed)}  failed ({sum(failed):,})"),
    ]
    return [f"{name:<9}{value}" for name, value in rows]


@click.command()
@click.option("--from", "start", type=click.DateTime(), help="Totals from this time (UTC).")
@click.option("--to", "end", type=click.DateTime(), help="Totals until this time (UTC).")
@click.option("--json", "as_json", is_flag=True, help="The totals and the hours as JSON.")
@api_command
def stats(client: Client, start: datetime | None, end: datetime | None, as_json: bool) -> None:
    """Totals (all time by default) and the last 24 hours, one block per hour (admin)."""
    figures, hours = client.stats(start, end), client.hourly()
    if as_json:
        render.print_json({"stats": figures.raw, "hourly": [hour.raw for hour in hours]})
    else:
        click.echo("\n".join(summary(figures, hours)))
