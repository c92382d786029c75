"""Schemas of the monitoring endpoints: statistics, the error log, status and readiness."""

from __future__ import annotations

from datetime import UTC

from apiflask import Schema
from apiflask.fields import Boolean, Dict, Float, Integer, List, Nested, String
from apiflask.validators import Length, Range
from marshmallow import ValidationError, validates_schema

from app.api.schemas import StrictSchema, UtcDateTime

MS = "milliseconds"


class StatsQuery(StrictSchema):
    start = UtcDateTime(
        data_key="from",
        load_default=None,
        default_timezone=UTC,
        metadata={
            "description": "Start of the range (ISO 8601; UTC when no offset); hours that overlap count."
        },
    )
    end = UtcDateTime(
        data_key="to",
        load_default=None,
        default_timezone=UTC,
        metadata={"description": "End of the range (exclusive)."},
    )

    @validates_schema
    def _ordered(self, data: dict[str, object], **_: object) -> None:
        start, end = data.get("start"), data.get("end")
        if start is not None and end is not None and start >= end:  # type: ignore[operator]
            raise ValidationError("'from' must be before 'to'", "from")


class ServerStatsOut(Schema):
    server_id = String(data_key="serverId")
    tasks_processed = Integer(
        data_key="tasksProcessed", metadata={"description": "Attempts that ended on it."}
    )
    success_count = Integer(data_key="successCount")
    failure_count = Integer(data_key="failureCount")
    success_rate = Float(data_key="successRate", allow_none=True)
    average_response_time = Float(
        data_key="averageResponseTime", allow_none=True, metadata={"description": f"In {MS}."}
    )
    last_active_time = String(data_key="lastActiveTime", allow_none=True)


class TopServerOut(ServerStatsOut):
    """A server in ``topServers`` (its own class: apispec registers a schema class once)."""


class HourOut(Schema):
    hour = String(metadata={"description": "Start of the hour, UTC."})
    tasks = Integer(metadata={"description": "Tasks submitted in the hour."})
    successful = Integer(metadata={"description": "Tasks completed in the hour."})
    failed = Integer(metadata={"description": "Tasks that failed or timed out in the hour."})
    avg_duration = Float(
        data_key="avgDuration", allow_none=True, metadata={"description": f"Processing time, in {MS}."}
    )


class StatsOut(Schema):
    total_tasks = Integer(data_key="totalTasks", metadata={"description": "Tasks submitted in the range."})
    pending_tasks = Integer(data_key="pendingTasks", metadata={"description": "PENDING now."})
    processing_tasks = Integer(data_key="processingTasks", metadata={"description": "PROCESSING now."})
    successful_tasks = Integer(data_key="successfulTasks")
    failed_tasks = Integer(data_key="failedTasks", metadata={"description": "FAILED or TIMEOUT."})
    timed_out_tasks = Integer(data_key="timedOutTasks")
    cancelled_tasks = Integer(data_key="cancelledTasks")
    retried_tasks = Integer(
        data_key="retriedTasks", metadata={"description": "Retries: automatic and manual."}
    )
    average_processing_time = Float(
        data_key="averageProcessingTime", allow_none=True, metadata={"description": f"In {MS}."}
    )
    server_count = Integer(data_key="serverCount")
    top_servers = List(Nested(TopServerOut), data_key="topServers")
    hourly_trend = List(Nested(HourOut), data_key="hourlyTrend")


class HourlyOut(Schema):
    hours = List(Nested(HourOut))


class ErrorsQuery(StrictSchema):
    limit = Integer(load_default=100, validate=Range(1, 1000), strict=False)
    type = String(load_default=None, validate=Length(min=1, max=64))


class ErrorEntryOut(Schema):
    error_type = String(data_key="errorType")
    message = String()
    count = Integer()
    first_seen = String(data_key="firstSeen")
    last_seen = String(data_key="lastSeen")


class ErrorsOut(Schema):
    errors = List(Nested(ErrorEntryOut))


class TypeLoadOut(Schema):
    type = String()
    scheduled = Integer(metadata={"description": "SCHEDULED: waiting for their runAt."})
    waiting = Integer(metadata={"description": "WAITING: waiting for their dependencies."})
    pending = Integer()
    running = Integer()


class LimitLoadOut(Schema):
    type = String(metadata={"description": "The task type limited, or * for all tasks."})
    current = Integer()
    inFlight = Integer()
    waiting = Integer(metadata={"description": "Tasks the limit holds back."})


class StatusOut(Schema):
    redis = String(metadata={"description": "'ok' or what is wrong."})
    database = String(metadata={"description": "'ok' or what is wrong."})
    workers = List(String(), metadata={"description": "Celery workers seen in the last 30 s."})
    queues = Dict(
        keys=String(), values=Integer(), metadata={"description": "Messages waiting per Celery queue."}
    )
    waiting_for_slot = Integer(data_key="waitingForSlot")
    scheduled_retries = Integer(data_key="scheduledRetries")
    by_type = List(Nested(TypeLoadOut), data_key="byType")
    slots_in_use = Integer(data_key="slotsInUse")
    slot_capacity = Integer(data_key="slotCapacity", metadata={"description": "Of servers taking tasks now."})
    finished_last_minute = Integer(data_key="finishedLastMinute")
    processing_rate = Float(
        data_key="processingRate", metadata={"description": "Tasks finished per second, last minute."}
    )
    limits = List(Nested(LimitLoadOut), metadata={"description": "Concurrency limits per task type."})


class AlertOut(Schema):
    alert = String(metadata={"description": "The condition's key, e.g. 'backlog' or 'no_server:gpu|'."})
    message = String()
    since = String(metadata={"description": "When it started firing, UTC."})


class AlertsOut(Schema):
    alerts = List(Nested(AlertOut))


class ReadyOut(Schema):
    ready = Boolean()
    checks = Dict(keys=String(), values=String())
