"""Statistics and the error log (admin)."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from app.api.auth import requires
from app.api.monitoring_schemas import ErrorsOut, ErrorsQuery, HourlyOut, ServerStatsOut, StatsOut, StatsQuery
from app.core.clock import datetime_to_ms, iso
from app.extensions import current_context as ctx
from app.services import statistics

bp = APIBlueprint("stats", __name__, url_prefix="/api", tag="Statistics")
BEARER = {"security": "BearerAuth"}


def _hour(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "hour": iso(row["hour_ms"])}


def _server(figures: dict[str, Any]) -> dict[str, Any]:
    return {**figures, "last_active_time": iso(figures["last_active_ms"])}


@bp.get("/stats")
@requires("admin")
@bp.input(StatsQuery, location="query", arg_name="query")
@bp.output(StatsOut)
@bp.doc(**BEARER)
def summary(query: dict[str, Any]) -> Any:
    """Totals over a range (all time by default), tasks waiting and running now, the
    five busiest servers and the hourly trend of the range's last 24 hours. Exact at
    any moment: stored hourly rollups plus the counters not flushed yet."""
    figures = statistics.summary(ctx(), datetime_to_ms(query["start"]), datetime_to_ms(query["end"]))
    figures["top_servers"] = [_server(s) for s in figures["top_servers"]]
    figures["hourly_trend"] = [_hour(h) for h in figures["hourly_trend"]]
    return figures


@bp.get("/stats/hourly")
@requires("admin")
@bp.output(HourlyOut)
@bp.doc(**BEARER)
def hourly() -> Any:
    """The last 24 hours, oldest first; the current hour is the last row."""
    return {"hours": [_hour(h) for h in statistics.hourly_report(ctx())]}


@bp.get("/stats/servers/<server_id>")
@requires("admin")
@bp.output(ServerStatsOut)
@bp.doc(responses={404: "Unknown server"}, **BEARER)
def server(server_id: str) -> Any:
    """One server's attempts over all time (also after it was removed)."""
    return _server(statistics.server_stats(ctx(), server_id))


@bp.get("/errors")
@requires("admin")
@bp.input(ErrorsQuery, location="query", arg_name="query")
@bp.output(ErrorsOut)
@bp.doc(**BEARER)
def errors(query: dict[str, Any]) -> Any:
    """Failures aggregated by (error type, message), most recently seen first."""
    entries = statistics.error_log(ctx(), query["limit"], query["type"])
    for entry in entries:
        entry["first_seen"] = entry["first_seen"].isoformat()
        entry["last_seen"] = entry["last_seen"].isoformat()
    return {"errors": entries}
