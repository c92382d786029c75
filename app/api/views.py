"""Turning service objects into the API's JSON shapes (snake_case; schemas camelCase them)."""

from __future__ import annotations

from typing import Any

from app.core.clock import iso
from app.core.states import TaskMode
from app.core.task import TaskState
from app.store.models import ServerRow


def task_view(state: TaskState) -> dict[str, Any]:
    spec = state.spec
    return {
        "id": state.id,
        "type": spec.type,
        "status": state.status.value,
        "priority": spec.priority,
        "mode": spec.mode.value,
        "is_async": spec.mode is TaskMode.CALLBACK,
        "payload": spec.payload,
        "capabilities": list(spec.capabilities),
        "region": spec.region,
        "group": spec.group,
        "progress": state.progress,
        "server_id": state.server_id,
        "result": state.result,
        "error": state.error,
        "attempts": state.attempt,
        "max_retries": spec.max_retries,
        "timeout": spec.timeout_s,
        "created_at": iso(state.created_ms),
        "updated_at": iso(state.updated_ms),
        "started_at": iso(state.started_ms),
        "finished_at": iso(state.finished_ms),
    }


def server_metrics_view(state: dict[str, str], in_flight: int) -> dict[str, Any]:
    """Live figures from the server's Redis hash."""
    processed = int(state.get("processed", 0))
    successes = int(state.get("successes", 0))
    last_active = state.get("last_active_ms")
    last_seen = state.get("last_seen_ms")
    return {
        "in_flight": in_flight,
        "health_score": int(state.get("health_score", 100)),
        "success_rate": round(successes / processed, 4) if processed else None,
        "average_response_time": round(int(state.get("resp_total_ms", 0)) / processed, 1)
        if processed
        else None,
        "tasks_processed": processed,
        "success_count": successes,
        "failure_count": int(state.get("failures", 0)),
        "last_active_time": iso(int(last_active)) if last_active else None,
        "last_seen_time": iso(int(last_seen)) if last_seen else None,
        "circuit_state": state.get("circuit", "closed"),
        "maintenance": state.get("maintenance") == "1",
        "effective_weight": float(state["weight"]) if state.get("weight") else None,
    }


def server_view(row: ServerRow, in_flight: int) -> dict[str, Any]:
    """A server as the API shows it: never its apiKey, only whether it has one."""
    return {
        "id": row.id,
        "name": row.name,
        "endpoints": row.endpoints,
        "max_concurrent": row.max_concurrent,
        "capabilities": row.capabilities,
        "groups": row.groups,
        "priority": row.priority,
        "region": row.region,
        "weight": row.weight,
        "status": row.status,
        "in_flight": in_flight,
        "has_api_key": bool(row.api_key),
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }
