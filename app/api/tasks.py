"""Task endpoints: submit, read, list, cancel, retry, and the backends' callback."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import request

from app.api.auth import current_caller, requires
from app.api.context import ctx
from app.api.schemas import (
    CallbackIn,
    CallbackQuery,
    TaskIn,
    TaskListQuery,
    TaskOut,
    TaskPage,
)
from app.api.views import task_view
from app.core.errors import InvalidInput
from app.core.task import MAX_TIMEOUT_S, TaskSpec
from app.services import control, outcomes, submit
from app.store import tasks_repo
from app.store.tasks_repo import row_to_state

bp = APIBlueprint("tasks", __name__, url_prefix="/api", tag="Tasks")
BEARER = {"security": "BearerAuth"}
#: Seconds a callback token outlives its task's own timeout (clock skew, slow networks).
CALLBACK_GRACE_S = 3600


def _spec(data: dict[str, Any]) -> TaskSpec:
    mode, is_async = data["mode"], data["is_async"]
    if mode is not None and is_async is not None and (mode == "callback") != is_async:
        raise InvalidInput("async and mode disagree", {"async": is_async, "mode": mode})
    if mode is None:
        mode = "callback" if is_async else "sync"
    return TaskSpec(
        type=data["type"],
        payload=data["payload"],
        priority=data["priority"],
        capabilities=tuple(dict.fromkeys(data["capabilities"])),
        mode=mode,
        timeout_s=data["timeout"],
        max_retries=data["max_retries"],
        region=data["region"],
        group=data["group"],
    )


@bp.post("/task")
@bp.input(TaskIn, arg_name="data")
@bp.output(TaskOut, status_code=201, description="The task, stored and queued")
@bp.doc(responses={200: "The task first created with this Idempotency-Key"}, **BEARER)
@requires("client", "admin")
def create_task(data: dict[str, Any]) -> Any:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 255:
        raise InvalidInput("Idempotency-Key must be 1-255 characters")
    state, created = submit.submit(ctx(), current_caller().subject, _spec(data), key)
    return task_view(state), 201 if created else 200


@bp.get("/task/<task_id>")
@bp.output(TaskOut)
@bp.doc(responses={404: "No such task (or not yours)"}, **BEARER)
@requires("client", "admin")
def get_task(task_id: str) -> Any:
    return task_view(control.visible_task(ctx(), task_id, current_caller().owner_filter))


@bp.get("/tasks")
@bp.input(TaskListQuery, location="query", arg_name="query")
@bp.output(TaskPage)
@bp.doc(**BEARER)
@requires("client", "admin")
def list_tasks(query: dict[str, Any]) -> Any:
    with ctx().db.session() as session:
        rows, next_cursor = tasks_repo.list_tasks(
            session,
            current_caller().owner_filter,
            query["status"],
            query["type"],
            query["limit"],
            query["cursor"],
        )
        items = [task_view(row_to_state(row)) for row in rows]
    return {"items": items, "next_cursor": next_cursor}


@bp.post("/task/<task_id>/cancel")
@bp.output(TaskOut)
@bp.doc(responses={404: "No such task", 409: "Task already final"}, **BEARER)
@requires("client", "admin")
def cancel_task(task_id: str) -> Any:
    return task_view(control.cancel(ctx(), task_id, current_caller().owner_filter))


@bp.post("/task/<task_id>/retry")
@bp.output(TaskOut)
@bp.doc(responses={404: "No such task", 409: "Task is not FAILED or TIMEOUT"}, **BEARER)
@requires("client", "admin")
def retry_task(task_id: str) -> Any:
    return task_view(control.retry(ctx(), task_id, current_caller().owner_filter))


@bp.put("/task/<task_id>")
@bp.input(CallbackQuery, location="query", arg_name="query")
@bp.input(CallbackIn, arg_name="update")
@bp.output(TaskOut)
@bp.doc(
    summary="Backend callback",
    description="Authenticated by the signed token in the callback URL, not a JWT.",
    responses={
        401: "Token forged or expired",
        403: "Token of another task",
        404: "No such task",
        409: "Task final or attempt superseded",
    },
)
def task_callback(task_id: str, query: dict[str, Any], update: dict[str, Any]) -> Any:
    context = ctx()
    # Authenticate before saying whether the task exists, then apply its own expiry.
    context.tokens.verify(query["token"], task_id, MAX_TIMEOUT_S + CALLBACK_GRACE_S)
    state = control.visible_task(context, task_id, owner=None)
    attempt = context.tokens.verify(query["token"], task_id, state.spec.timeout_s + CALLBACK_GRACE_S)
    return task_view(outcomes.callback(context, task_id, attempt, update))
