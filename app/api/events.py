"""Event streams (server-sent events): a task's life as it happens, resumable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from apiflask import APIBlueprint
from flask import Response, request

from app.api.auth import current_caller, requires
from app.api.job_schemas import JobSummaryOut
from app.api.schemas import EventsQuery, TaskOut
from app.api.views import job_view, task_view
from app.core.errors import InvalidInput
from app.core.events import KEEPALIVE, START, Event, EventId, format_sse
from app.core.task import TaskState
from app.extensions import current_context as ctx
from app.services import control, events, job_events, jobs

bp = APIBlueprint("events", __name__, url_prefix="/api", tag="Events")
BEARER = {"security": "BearerAuth"}

#: Headers of every event stream: no caching, and no buffering by nginx-like proxies.
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

TASK_STREAM = {
    "description": (
        "A text/event-stream. Events: `status` {status, attempt, serverId, at, error?} on "
        "every transition; `progress` {progress}; `chunk` {data} for each piece of output "
        "a backend streams; `result` (the task as GET /api/task/{id} returns it), after "
        "which the stream ends. Every event has an id (`<version>-<n>`); a comment line "
        "`: keep-alive` is sent after 15 s of silence."
    ),
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


def last_event_id(query: dict[str, Any]) -> EventId:
    """Where to resume: the Last-Event-ID header, else ``?lastEventId=``, else the start."""
    raw = request.headers.get("Last-Event-ID") or query["last_event_id"]
    if raw is None or raw == "":
        return START
    try:
        return EventId.parse(raw)
    except ValueError as exc:
        raise InvalidInput("Last-Event-ID is not an event id of this stream", {"lastEventId": raw}) from exc


def event_stream(events_iter: Iterator[Event | None]) -> Response:
    """A streaming response of ``events_iter`` (None: a keep-alive comment)."""

    def body() -> Iterator[str]:
        yield ": stream open\n\n"  # headers and a first byte out at once
        for event in events_iter:
            yield KEEPALIVE if event is None else format_sse(event)

    return Response(body(), mimetype="text/event-stream", headers=STREAM_HEADERS)


def _rendered(state: TaskState) -> Any:
    return TaskOut().dump(task_view(state))


@bp.get("/task/<task_id>/events")
@requires("client", "admin")
@bp.input(EventsQuery, location="query", arg_name="query")
@bp.doc(
    summary="Follow a task's events (SSE)",
    description=(
        "The task's events from its start, or after the `Last-Event-ID` header (or "
        "`lastEventId` query parameter) with nothing lost and nothing repeated. A finished "
        "task's stream replays and ends at once."
    ),
    responses={200: TASK_STREAM, 404: "No such task (or not yours)", 422: "Malformed Last-Event-ID"},
    **BEARER,
)
def task_events(task_id: str, query: dict[str, Any]) -> Any:
    context = ctx()
    control.visible_task(context, task_id, current_caller().owner_filter)
    after = last_event_id(query)
    keepalive_s = context.settings.events_keepalive_s
    return event_stream(events.follow(context, task_id, after, _rendered, keepalive_s=keepalive_s))


JOB_STREAM = {
    "description": (
        "A text/event-stream. Events: `status` {taskId, status, attempt, serverId, at, "
        "error?} for each transition of each of the job's tasks (progress updates left "
        "out), and `job` (the job as GET /api/jobs/{id} returns it, without taskIds) at "
        "the start and after each batch of statuses, at most about once a second. The "
        "stream ends when the job is no longer RUNNING. Ids come from the database, so "
        "resuming works across a Redis loss too."
    ),
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


def _rendered_job(job: jobs.Job) -> Any:
    return JobSummaryOut().dump(job_view(job))


@bp.get("/jobs/<job_id>/events")
@requires("client", "admin")
@bp.input(EventsQuery, location="query", arg_name="query")
@bp.doc(
    summary="Follow a job's events (SSE)",
    description="Its tasks' status events and its counts, from the start or after Last-Event-ID.",
    responses={200: JOB_STREAM, 404: "No such job (or not yours)", 422: "Malformed Last-Event-ID"},
    **BEARER,
)
def job_events_stream(job_id: str, query: dict[str, Any]) -> Any:
    context = ctx()
    jobs.summary(context, job_id, current_caller().owner_filter)
    after = last_event_id(query)
    keepalive_s = context.settings.events_keepalive_s
    return event_stream(job_events.follow(context, job_id, after, _rendered_job, keepalive_s=keepalive_s))
