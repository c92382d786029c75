"""Concurrency limits per task type, static or scaling (admin)."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from app.api.auth import requires
from app.api.limit_schemas import LimitIn, LimitList, LimitOut
from app.core.clock import ms_to_datetime
from app.core.errors import InvalidInput
from app.core.limits import DynamicLimit, LimitConfig
from app.extensions import current_context as ctx
from app.services import limits
from app.services.limits import LimitView

bp = APIBlueprint("limits", __name__, url_prefix="/api/limits", tag="Concurrency limits")
BEARER = {"security": "BearerAuth"}
#: Characters a task type has at most (as in a task).
TYPE_MAX = 100


def _checked_type(limit_type: str) -> str:
    """The path's type: a task type's rules (1-100 characters, no NUL), or ``*``."""
    if not 1 <= len(limit_type) <= TYPE_MAX or "\x00" in limit_type:
        raise InvalidInput(
            "invalid limit type", {"type": [f"a task type of 1 to {TYPE_MAX} characters (no NUL), or *"]}
        )
    return limit_type


def _view(view: LimitView) -> dict[str, Any]:
    limit = view.limit
    out: dict[str, Any] = {
        "type": limit.type,
        "current": view.current,
        "inFlight": view.in_flight,
        "waiting": view.waiting,
        "lastChange": {
            "at": ms_to_datetime(limit.changed_ms),
            "from_": limit.changed_from,
            "to": limit.current,
            "reason": limit.change_reason,
        },
    }
    if limit.config.dynamic is not None:
        out["dynamic"] = limit.config.dynamic.to_json()
    else:
        out["maxConcurrent"] = limit.config.max_concurrent
    return out


@bp.get("")
@requires("admin")
@bp.output(LimitList)
@bp.doc(description="Every limit: its value now, attempts in flight, tasks waiting, last change.", **BEARER)
def list_limits() -> Any:
    return {"items": [_view(v) for v in limits.list_limits(ctx())]}


@bp.get("/<path:limit_type>")
@requires("admin")
@bp.output(LimitOut)
@bp.doc(responses={404: "No limit for this type"}, **BEARER)
def get_limit(limit_type: str) -> Any:
    return _view(limits.get_limit(ctx(), _checked_type(limit_type)))


@bp.put("/<path:limit_type>")
@requires("admin")
@bp.input(LimitIn, arg_name="data")
@bp.output(LimitOut)
@bp.doc(
    description="Create or replace the limit of a task type (* limits all tasks together): "
    "static with maxConcurrent, or scaling with dynamic. It is checked in the same atomic "
    "step that reserves a server's slot, so it is never exceeded; the tasks it holds back "
    "wait in priority order and never block other types.",
    responses={422: "Invalid limit"},
    **BEARER,
)
def put_limit(limit_type: str, data: dict[str, Any]) -> Any:
    dynamic = data.get("dynamic")
    config = LimitConfig(
        max_concurrent=data.get("max_concurrent"),
        dynamic=DynamicLimit(**dynamic) if dynamic else None,
    )
    return _view(limits.put_limit(ctx(), _checked_type(limit_type), config))


@bp.delete("/<path:limit_type>")
@requires("admin")
@bp.output({}, status_code=204)
@bp.doc(responses={404: "No limit for this type"}, **BEARER)
def delete_limit(limit_type: str) -> Any:
    limits.delete_limit(ctx(), _checked_type(limit_type))
    return ""
