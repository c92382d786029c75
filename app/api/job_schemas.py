"""Request and response schemas of jobs (many tasks in one request)."""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import Dict, Integer, List, Nested, Raw, String
from apiflask.validators import Length, OneOf, Range
from marshmallow import ValidationError, validates_schema

from app.api.schemas import TASK_STATUSES, StrictSchema, TaskIn, TaskOut
from app.core.job_status import MAX_JOB_ITEMS, JobStatus

ITEMS = Length(min=1, max=MAX_JOB_ITEMS)


class JobItemIn(TaskIn):
    """One task of a job: what ``POST /api/task`` takes, plus an optional key."""

    key = String(
        load_default=None,
        validate=Length(min=1, max=100),
        metadata={"description": "Unique within the job; siblings may name it in dependsOn."},
    )


class JobTemplateIn(TaskIn):
    """What every task of a fan-out job shares: a task body without its payload."""

    class Meta(TaskIn.Meta):
        exclude = ("payload",)


class JobIn(StrictSchema):
    name = String(load_default=None, validate=Length(min=1, max=255))
    tasks = List(
        Nested(JobItemIn),
        load_default=None,
        validate=ITEMS,
        metadata={"description": f"1-{MAX_JOB_ITEMS} task bodies, each what POST /api/task takes."},
    )
    template = Nested(
        JobTemplateIn,
        load_default=None,
        metadata={"description": "Fan-out: the task body every item's payload is sent with."},
    )
    items = List(
        Raw(allow_none=True),
        load_default=None,
        validate=ITEMS,
        metadata={"description": f"Fan-out: 1-{MAX_JOB_ITEMS} payloads, one task each."},
    )

    @validates_schema
    def _one_shape(self, data: dict[str, Any], **_: Any) -> None:
        listed, fanned = data["tasks"] is not None, data["template"] is not None or data["items"] is not None
        if listed and fanned:
            raise ValidationError("give either tasks, or template and items, not both")
        if not listed and (data["template"] is None or data["items"] is None):
            raise ValidationError("give tasks, or both template and items")


class JobOut(Schema):
    id = String()
    name = String(allow_none=True)
    owner = String()
    status = String(metadata={"enum": [s.value for s in JobStatus]})
    total = Integer()
    task_ids = List(String(), data_key="taskIds", metadata={"description": "In item order."})
    counts = Dict(keys=String(), values=Integer(), metadata={"description": "Tasks by status, now."})
    progress = Integer(metadata={"description": "Finished tasks as a percentage of total, 0-100."})
    created_at = String(data_key="createdAt")
    finished_at = String(data_key="finishedAt", allow_none=True)


class JobSummaryOut(JobOut):
    class Meta:
        exclude = ("task_ids",)


class JobPage(Schema):
    items = List(Nested(JobSummaryOut))
    next_cursor = String(data_key="nextCursor", allow_none=True)


class JobListQuery(StrictSchema):
    limit = Integer(load_default=20, validate=Range(1, 100))
    cursor = String(load_default=None, validate=Length(max=200))


class JobTasksQuery(StrictSchema):
    status = String(load_default=None, validate=OneOf(TASK_STATUSES))
    limit = Integer(load_default=100, validate=Range(1, 1000))
    cursor = String(load_default=None, validate=Length(max=100))


class JobTaskPage(Schema):
    items = List(Nested(TaskOut))
    next_cursor = String(data_key="nextCursor", allow_none=True)
