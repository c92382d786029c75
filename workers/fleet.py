"""Fleet jobs: one health check per server, and finishing a drain."""

from __future__ import annotations

from app.services import health, servers
from workers.celery_app import app, worker_context


@app.task(name="taskfleet.servers.health_check", ignore_result=True)
def health_check(server_id: str) -> str | None:
    """Check one server's health endpoint and move its health state."""
    after = health.check(worker_context(), server_id)
    return None if after is None else after.status.value


@app.task(name="taskfleet.servers.finish_drain", ignore_result=True)
def finish_drain(server_id: str) -> bool:
    """After the drain period: retry what still runs elsewhere, remove the server."""
    return servers.finish_drain(worker_context(), server_id)


@app.task(name="taskfleet.maintenance.health_checks", ignore_result=True)
def health_checks() -> int:
    """Fan out a check for every server whose next check is due."""
    context = worker_context()
    due = health.due_checks(context)
    for server_id in due:
        health_check.delay(server_id)
    return len(due)


@app.task(name="taskfleet.maintenance.wake_servers", ignore_result=True)
def wake_servers() -> int:
    """Servers whose open circuit or busy period ended take tasks again."""
    return health.wake_servers(worker_context())


@app.task(name="taskfleet.maintenance.cleanup_servers", ignore_result=True)
def cleanup_servers() -> dict[str, int]:
    """Silent servers go offline; long-offline servers are removed."""
    return health.cleanup_stale(worker_context())
