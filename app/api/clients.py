"""Limits per client (a token's ``sub``): submission rate, unfinished tasks, fair-share
weight (admin)."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from app.api.auth import requires
from app.api.client_schemas import ClientLimitsIn, ClientLimitsOut
from app.core.errors import InvalidInput
from app.extensions import current_context as ctx
from app.services import client_limits
from app.services.client_limits import LimitsView

bp = APIBlueprint("clients", __name__, url_prefix="/api/clients", tag="Client limits")
BEARER = {"security": "BearerAuth"}
#: Characters a sub has at most (the column's size).
SUB_MAX = 255
PATH_DOC = (
    " The sub may hold any character but NUL; percent-encode it in the path (a / may also be written as is)."
)


def _checked_sub(sub: str) -> str:
    if len(sub) > SUB_MAX:
        raise InvalidInput("invalid client", {"sub": [f"at most {SUB_MAX} characters"]})
    return sub


def _view(view: LimitsView) -> dict[str, Any]:
    stored, effective, usage = view.stored, view.effective, view.usage
    return {
        "sub": view.sub,
        "stored": {
            "submitsPerSecond": stored.submits_per_s,
            "burst": stored.burst,
            "maxUnfinished": stored.max_unfinished,
            "weight": stored.weight,
        },
        "effective": {
            "submitsPerSecond": effective.submits_per_s,
            "burst": effective.burst,
            "maxUnfinished": effective.max_unfinished,
            "weight": effective.weight,
        },
        "usage": {
            "tokens": None if usage.tokens is None else round(usage.tokens, 3),
            "unfinished": view.unfinished,
            "unfinishedCounted": usage.unfinished_counted,
        },
    }


@bp.get("/<path:sub>/limits")
@requires("admin")
@bp.output(ClientLimitsOut)
@bp.doc(description="The client's limits: set, in force, and its usage now." + PATH_DOC, **BEARER)
def get_limits(sub: str) -> Any:
    return _view(client_limits.get(ctx(), _checked_sub(sub)))


@bp.put("/<path:sub>/limits")
@requires("admin")
@bp.input(ClientLimitsIn, arg_name="data")
@bp.output(ClientLimitsOut)
@bp.doc(
    description="Set any of the client's limits; a field left out keeps its value, null puts "
    "the default back. Every API process applies them within 5 s; the weight at once." + PATH_DOC,
    responses={422: "Invalid limits"},
    **BEARER,
)
def put_limits(sub: str, data: dict[str, Any]) -> Any:
    return _view(client_limits.put(ctx(), _checked_sub(sub), data))


@bp.delete("/<path:sub>/limits")
@requires("admin")
@bp.output(ClientLimitsOut)
@bp.doc(description="Back to the defaults." + PATH_DOC, **BEARER)
def delete_limits(sub: str) -> Any:
    return _view(client_limits.delete(ctx(), _checked_sub(sub)))
