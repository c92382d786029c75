"""Server jobs: health checks (fanned out one per due server), breaker wake-ups,
stale-server cleanup, and finishing a drain."""

from __future__ import annotations

from celery import shared_task

from app import jobs
from app.extensions import current_context
from app.services import fleet_health, servers


@shared_task(name=jobs.HEALTH_CHECK, ignore_result=True)
def health_check(server_id: str) -> str | None:
    """Check one server's health endpoint and move its health state."""
    after = fleet_health.check(current_context(), server_id)
    return None if after is None else after.status.value


@shared_task(name=jobs.FINISH_DRAIN, ignore_result=True)
def finish_drain(server_id: str) -> bool:
    """After the drain period: retry what still runs elsewhere, remove the server."""
    return servers.finish_drain(current_context(), server_id)


@shared_task(name=jobs.HEALTH_CHECKS, ignore_result=True)
def health_checks() -> int:
    """Fan out a check for every server whose next check is due."""
    context = current_context()
    due = fleet_health.due_checks(context)
    for server_id in due:
        context.queue.call_later(jobs.HEALTH_CHECK, [server_id])
    return len(due)


@shared_task(name=jobs.WAKE_SERVERS, ignore_result=True)
def wake_servers() -> int:
    """Servers whose open circuit or busy period ended take tasks again."""
    return fleet_health.wake_servers(current_context())


@shared_task(name=jobs.CLEANUP_SERVERS, ignore_result=True)
def cleanup_servers() -> dict[str, int]:
    """Silent servers go offline; long-offline servers are removed."""
    return fleet_health.cleanup_stale(current_context())
