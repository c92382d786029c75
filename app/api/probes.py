"""Liveness, readiness, the fleet's status and the alerts firing."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from app.api.auth import requires
from app.api.monitoring_schemas import AlertsOut, ReadyOut, StatusOut
from app.api.schemas import HealthOut
from app.core.clock import iso
from app.extensions import current_context as ctx
from app.services import alerts as fleet_alerts
from app.services import status as fleet_status

bp = APIBlueprint("health", __name__, url_prefix="/api", tag="Health")


@bp.get("/health")
@bp.output(HealthOut)
def health() -> Any:
    """The API process is up (it does not check Redis or the database)."""
    return {"status": "ok"}


@bp.get("/ready")
@bp.output(ReadyOut)
@bp.doc(
    responses={
        503: {
            "description": "Not ready: Redis or the database is down, or no worker is alive",
            "content": {"application/json": {"schema": ReadyOut}},
        }
    }
)
def ready() -> Any:
    """For load balancers: Redis and the database answer and a worker is alive."""
    is_ready, checks = fleet_status.ready(ctx())
    return {"ready": is_ready, "checks": checks}, 200 if is_ready else 503


@bp.get("/status")
@requires("admin")
@bp.output(StatusOut)
@bp.doc(security="BearerAuth")
def status() -> Any:
    """Queues, load by task type, slots, workers and the last minute's rate."""
    return fleet_status.status(ctx())


@bp.get("/alerts")
@requires("admin")
@bp.output(AlertsOut)
@bp.doc(security="BearerAuth")
def alerts() -> Any:
    """The alerts firing now, oldest first, as beat's last check (every 30 s) left them."""
    return {
        "alerts": [
            {"alert": a["alert"], "message": a["message"], "since": iso(a["since_ms"])}
            for a in fleet_alerts.firing_now(ctx())
        ]
    }
