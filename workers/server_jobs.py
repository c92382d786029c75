"""Server jobs that act on one server: a health check (the tick's health_checks routine
starts one per due server) and finishing a drain. The periodic server routines (fan
out checks, wake-ups, cleanup) are run by the tick (``workers/maintenance_jobs.py``)."""

from __future__ import annotations

from celery import shared_task

from app import jobs
from app.extensions import current_context
from app.services import fleet_health, servers


# No task events: every server is checked every 10-60 s, so a fleet's checks would
# bury the dispatches Flower lists (the health state is in GET /api/servers/{id}).
@shared_task(name=jobs.HEALTH_CHECK, ignore_result=True, send_events=False)
def health_check(server_id: str) -> str | None:
    """Check one server's health endpoint and move its health state."""
    after = fleet_health.check(current_context(), server_id)
    return None if after is None else after.status.value


@shared_task(name=jobs.FINISH_DRAIN, ignore_result=True)
def finish_drain(server_id: str) -> bool:
    """After the drain period: retry what still runs elsewhere, remove the server."""
    return servers.finish_drain(current_context(), server_id)
