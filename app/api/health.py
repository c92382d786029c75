"""Liveness."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from app.api.schemas import HealthOut

bp = APIBlueprint("health", __name__, url_prefix="/api", tag="Health")


@bp.get("/health")
@bp.output(HealthOut)
def health() -> Any:
    """The API process is up (it does not check Redis or the database)."""
    return {"status": "ok"}
