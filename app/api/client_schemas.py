"""Schemas of the per-client limits (``/api/clients/{sub}/limits``)."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Float, Integer, Nested, String
from apiflask.validators import Range

from app.api.schemas import StrictInteger, StrictNumber, StrictSchema
from app.core.client_limits import (
    BURST_MAX,
    MAX_UNFINISHED_MAX,
    SUBMITS_PER_S_MAX,
    SUBMITS_PER_S_MIN,
    WEIGHT_MAX,
)

RESET = "null puts the default back."


class ClientLimitsIn(StrictSchema):
    """Any subset of the four; a field left out keeps its value, null resets it."""

    submits_per_s = StrictNumber(
        data_key="submitsPerSecond",
        allow_none=True,
        validate=Range(min=SUBMITS_PER_S_MIN, max=SUBMITS_PER_S_MAX),
        metadata={
            "description": f"Tasks per second the client's bucket regains (CLIENT_SUBMITS_PER_S). {RESET}"
        },
    )
    burst = StrictInteger(
        allow_none=True,
        validate=Range(min=1, max=BURST_MAX),
        metadata={
            "description": f"Tasks the bucket holds: the largest job that passes (CLIENT_BURST). {RESET}"
        },
    )
    max_unfinished = StrictInteger(
        data_key="maxUnfinished",
        allow_none=True,
        validate=Range(min=1, max=MAX_UNFINISHED_MAX),
        metadata={
            "description": f"Tasks the client may have unfinished at once (CLIENT_MAX_UNFINISHED). {RESET}"
        },
    )
    weight = StrictInteger(
        allow_none=True,
        validate=Range(min=1, max=WEIGHT_MAX),
        metadata={
            "description": f"The client's share of freed slots relative to others (default 1). {RESET}"
        },
    )


class StoredLimitsOut(Schema):
    submitsPerSecond = Float(allow_none=True)
    burst = Integer(allow_none=True)
    maxUnfinished = Integer(allow_none=True)
    weight = Integer(allow_none=True)


class EffectiveLimitsOut(Schema):
    submitsPerSecond = Float()
    burst = Integer()
    maxUnfinished = Integer()
    weight = Integer()


class ClientUsageOut(Schema):
    tokens = Float(
        allow_none=True,
        metadata={
            "description": "Tasks the client may submit at once now (null: a full bucket, idle client)."
        },
    )
    unfinished = Integer(metadata={"description": "The client's unfinished tasks in the database."})
    unfinishedCounted = Integer(
        allow_none=True,
        metadata={
            "description": "What submissions are checked against: the last recount plus tasks stored "
            "and admitted since (never less than the true count; null: not counted yet)."
        },
    )


class ClientLimitsOut(Schema):
    sub = String(metadata={"description": "The client: a token's sub."})
    stored = Nested(StoredLimitsOut, metadata={"description": "What an admin set (null: the default)."})
    effective = Nested(EffectiveLimitsOut, metadata={"description": "The limits in force."})
    usage = Nested(ClientUsageOut)
