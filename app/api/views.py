"""Turning service objects into the API's JSON shapes (snake_case; schemas camelCase them)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from app.core.clock import iso
from app.core.servers import Server
from app.core.states import TaskMode
from app.core.task import TaskAttempt, TaskState
from app.services.control import Transition
from app.services.jobs import Job
from app.store.records import ServerRecord


def task_view(state: TaskState) -> dict[str, Any]:
    """The task's JSON; a state read from Redis may lack a large payload
    (``spec.payload_in_db``): pass it through ``state_sync.with_payload`` first."""
    spec = state.spec
    return {
        "id": state.id,
        "type": spec.type,
        "owner": state.owner,
        "status": state.status.value,
        "priority": spec.priority,
        "mode": spec.mode.value,
        "is_async": spec.mode is TaskMode.CALLBACK,
        "payload": spec.payload,
        "capabilities": list(spec.capabilities),
        "region": spec.region,
        "group": spec.group,
        "metadata": spec.metadata,
        "progress": state.progress,
        "server_id": state.server_id,
        "result": state.result,
        "error": state.error,
        "attempts": state.attempt,
        "max_retries": spec.max_retries,
        "timeout": spec.timeout_s,
        "poll_interval": spec.poll_interval_s,
        "poll_max_attempts": spec.poll_max_attempts,
        "run_at": iso(spec.run_at_ms),
        "depends_on": list(spec.depends_on),
        "job_id": spec.job_id,
        "key": spec.job_key,
        "stream": spec.stream,
        "created_at": iso(state.created_ms),
        "updated_at": iso(state.updated_ms),
        "started_at": iso(state.started_ms),
        "finished_at": iso(state.finished_ms),
    }


def job_view(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "owner": job.owner,
        "status": job.status.value,
        "total": job.total,
        "task_ids": job.task_ids,
        "counts": job.tally.counts,
        "progress": job.progress,
        "created_at": iso(job.created_ms),
        "finished_at": iso(job.finished_ms),
    }


def attempt_view(attempt: TaskAttempt) -> dict[str, Any]:
    return {
        "attempt": attempt.attempt,
        "server_id": attempt.server_id,
        "started_at": iso(attempt.started_ms),
        "ended_at": iso(attempt.ended_ms),
        "outcome": attempt.outcome.value if attempt.outcome else None,
        "error": attempt.error,
        "duration_ms": attempt.duration_ms,
        "metadata": attempt.metadata,
    }


def history_view(transitions: list[Transition], attempts: list[TaskAttempt]) -> dict[str, Any]:
    return {
        "transitions": [
            {
                "version": t.version,
                "from_status": t.from_status,
                "to_status": t.to_status,
                "attempt": t.attempt,
                "at": iso(t.at_ms),
            }
            for t in transitions
        ],
        "attempts": [attempt_view(a) for a in attempts],
    }


def server_metrics_view(live: ServerRecord, in_flight: int) -> dict[str, Any]:
    """Live figures from the server's Redis record."""
    average = live.average_response_ms
    return {
        "in_flight": in_flight,
        "health_score": live.health_score,
        "success_rate": None if live.success_rate is None else round(live.success_rate, 4),
        "average_response_time": None if average is None else round(average, 1),
        "tasks_processed": live.processed,
        "success_count": live.successes,
        "failure_count": live.failures,
        "last_active_time": iso(live.last_active_ms),
        "last_seen_time": iso(live.last_seen_ms),
        "circuit_state": live.circuit,
        "maintenance": live.maintenance,
        "effective_weight": live.weight or None,
        "last_check_time": iso(live.last_check_ms),
        "last_check_error": live.last_check_error,
        "reported": {**live.reported(), "reported_at": iso(live.reported_at_ms)},
    }


def server_view(server: Server, in_flight: int) -> dict[str, Any]:
    """A server as the API shows it: never its apiKey, only whether it has one."""
    return {
        "id": server.id,
        "name": server.name,
        "endpoints": server.endpoints,
        "max_concurrent": server.max_concurrent,
        "capabilities": list(server.capabilities),
        "groups": list(server.groups),
        "priority": server.priority,
        "region": server.region,
        "weight": server.weight,
        "status": server.status.value,
        "in_flight": in_flight,
        "has_api_key": server.has_api_key,
        "timeout_s": server.timeout_s,
        "batch": None if server.batch is None else asdict(server.batch),
        "callback_signature": server.callback_signature,
        "created_at": server.created_at.isoformat(),
        "updated_at": server.updated_at.isoformat(),
    }
