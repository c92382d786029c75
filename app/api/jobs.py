"""Job endpoints: many tasks in one request, read, listed and cancelled together."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from apiflask import APIBlueprint

from app.api.auth import current_caller, requires
from app.api.job_schemas import JobIn, JobListQuery, JobOut, JobPage, JobTaskPage, JobTasksQuery
from app.api.tasks import idempotency_key, task_spec
from app.api.views import job_view, task_view
from app.core.task import TaskSpec
from app.extensions import current_context as ctx
from app.services import jobs

bp = APIBlueprint("jobs", __name__, url_prefix="/api", tag="Jobs")
BEARER = {"security": "BearerAuth"}


def _specs(data: dict[str, Any]) -> list[TaskSpec]:
    if data["tasks"] is not None:
        return [replace(task_spec(item), job_key=item["key"]) for item in data["tasks"]]
    template = task_spec({**data["template"], "payload": None})
    return [replace(template, payload=payload) for payload in data["items"]]


@bp.post("/jobs")
@requires("client", "admin")
@bp.input(JobIn, arg_name="data")
@bp.output(JobOut, status_code=201, description="The job, its tasks stored and queued")
@bp.doc(
    description=(
        "All or nothing: one invalid item refuses the whole job (422, its index in "
        "`details`) and nothing is stored. Give `tasks` (each what POST /api/task takes, "
        "plus an optional `key`), or `template` and `items` (fan-out: one task per item, "
        "the item as its payload). The job costs one submission per task of the client's rate "
        "limit and needs room for all its tasks under its cap of unfinished tasks."
    ),
    responses={
        200: "The job first created with this Idempotency-Key",
        422: "Invalid body; or more tasks than the client's burst or maxUnfinished could ever admit",
        429: "The client submits too fast or has too many unfinished tasks: try again after Retry-After",
    },
    **BEARER,
)
def create_job(data: dict[str, Any]) -> Any:
    caller = current_caller()
    job, created = jobs.submit(
        ctx(), caller.subject, data["name"], _specs(data), idempotency_key(), as_admin=caller.is_admin
    )
    return job_view(job), 201 if created else 200


@bp.get("/jobs/<job_id>")
@requires("client", "admin")
@bp.output(JobOut)
@bp.doc(responses={404: "No such job (or not yours)"}, **BEARER)
def get_job(job_id: str) -> Any:
    return job_view(jobs.get(ctx(), job_id, current_caller().owner_filter))


@bp.get("/jobs")
@requires("client", "admin")
@bp.input(JobListQuery, location="query", arg_name="query")
@bp.output(JobPage)
@bp.doc(description="Your jobs (every job, for an admin), newest first.", **BEARER)
def list_jobs(query: dict[str, Any]) -> Any:
    found, next_cursor = jobs.list_jobs(ctx(), current_caller().owner_filter, query["limit"], query["cursor"])
    return {"items": [job_view(job) for job in found], "next_cursor": next_cursor}


@bp.get("/jobs/<job_id>/tasks")
@requires("client", "admin")
@bp.input(JobTasksQuery, location="query", arg_name="query")
@bp.output(JobTaskPage)
@bp.doc(description="The job's tasks in item order.", responses={404: "No such job (or not yours)"}, **BEARER)
def job_tasks(job_id: str, query: dict[str, Any]) -> Any:
    found, next_cursor = jobs.tasks(
        ctx(), job_id, current_caller().owner_filter, query["status"], query["limit"], query["cursor"]
    )
    return {"items": [task_view(state) for state in found], "next_cursor": next_cursor}


@bp.post("/jobs/<job_id>/cancel")
@requires("client", "admin")
@bp.output(JobOut)
@bp.doc(
    description="Cancels every unfinished task of the job; the job is CANCELLED from then on.",
    responses={404: "No such job (or not yours)"},
    **BEARER,
)
def cancel_job(job_id: str) -> Any:
    return job_view(jobs.cancel(ctx(), job_id, current_caller().owner_filter))
