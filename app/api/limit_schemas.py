"""Schemas of the concurrency limits (``/api/limits``)."""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import AwareDateTime, Integer, List, Nested, String
from apiflask.validators import Range
from marshmallow import ValidationError, validates_schema

from app.api.schemas import StrictInteger, StrictSchema
from app.core.limits import DynamicLimit

#: The largest limit, growth step or scaling period that makes sense (a sanity bound).
LIMIT_MAX = 1_000_000
PERIOD_MAX_S = 30 * 24 * 3600


class DynamicIn(StrictSchema):
    initial = StrictInteger(
        required=True,
        validate=Range(min=1, max=LIMIT_MAX),
        metadata={"description": "The value it starts at and never goes below."},
    )
    max = StrictInteger(
        required=True,
        validate=Range(min=1, max=LIMIT_MAX),
        metadata={"description": "The value it never goes above (at least initial)."},
    )
    step = StrictInteger(
        required=True,
        validate=Range(min=1, max=LIMIT_MAX),
        metadata={"description": "How much it grows or shrinks at a time."},
    )
    up_every_s = StrictInteger(
        data_key="upEverySeconds",
        required=True,
        validate=Range(min=1, max=PERIOD_MAX_S),
        metadata={"description": "It grows at most once per this many seconds."},
    )
    down_every_s = StrictInteger(
        data_key="downEverySeconds",
        required=True,
        validate=Range(min=1, max=PERIOD_MAX_S),
        metadata={"description": "It shrinks at most once per this many seconds."},
    )

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        try:
            DynamicLimit(**data)
        except ValueError as exc:
            raise ValidationError(str(exc), "max") from exc


class LimitIn(StrictSchema):
    """Exactly one of ``maxConcurrent`` (static) and ``dynamic`` (scaling)."""

    max_concurrent = StrictInteger(
        data_key="maxConcurrent",
        validate=Range(min=1, max=LIMIT_MAX),
        metadata={"description": "A static limit: at most this many tasks of the type run at once."},
    )
    dynamic = Nested(
        DynamicIn,
        metadata={
            "description": "A scaling limit: grows by step when more than twice the current limit "
            "wait for it (at most once per upEverySeconds), shrinks by step when fewer than half "
            "of it wait (at most once per downEverySeconds), within [initial, max]. Waiting: the "
            "tasks of the type this limit holds back."
        },
    )

    @validates_schema
    def _one_kind(self, data: dict[str, Any], **_: Any) -> None:
        if ("max_concurrent" in data) == ("dynamic" in data):
            raise ValidationError("give exactly one of maxConcurrent and dynamic", "_schema")


class DynamicOut(Schema):
    initial = Integer()
    max = Integer()
    step = Integer()
    upEverySeconds = Integer()
    downEverySeconds = Integer()


class LimitChangeOut(Schema):
    at = AwareDateTime()
    from_ = Integer(data_key="from", allow_none=True, metadata={"description": "Null when set by an admin."})
    to = Integer()
    reason = String()


class LimitOut(Schema):
    type = String(metadata={"description": "The task type limited, or * for all tasks together."})
    maxConcurrent = Integer(metadata={"description": "Set for a static limit."})
    dynamic = Nested(DynamicOut, metadata={"description": "Set for a scaling limit."})
    current = Integer(metadata={"description": "The limit in force now."})
    inFlight = Integer(metadata={"description": "Attempts it counts as running now."})
    waiting = Integer(metadata={"description": "Tasks it holds back now, in priority order."})
    lastChange = Nested(LimitChangeOut)


class ListedLimitOut(LimitOut):
    """A limit in the list (its own class: apispec registers a schema class once)."""


class LimitList(Schema):
    items = List(Nested(ListedLimitOut))
