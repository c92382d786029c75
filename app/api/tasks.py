"""Task endpoints: submit, read, list, cancel, retry, and the backends' callback."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from apiflask import APIBlueprint
from flask import g, request

from app.api.auth import current_caller, requires
from app.api.schemas import (
    AttemptList,
    CallbackIn,
    CallbackQuery,
    TaskHistoryOut,
    TaskIn,
    TaskListQuery,
    TaskOut,
    TaskPage,
)
from app.api.views import attempt_view, history_view, task_view
from app.core import deferral, signatures
from app.core.clock import datetime_to_ms
from app.core.errors import Forbidden, InvalidInput
from app.core.states import TaskMode
from app.core.task import TaskSpec, TaskState
from app.extensions import current_context as ctx
from app.services import control, outcomes, state_sync, submit

bp = APIBlueprint("tasks", __name__, url_prefix="/api", tag="Tasks")
BEARER = {"security": "BearerAuth"}


def _shown(state: TaskState) -> dict[str, Any]:
    """A task as the API answers with it: whole, even when Redis keeps its payload apart."""
    return task_view(state_sync.with_payload(ctx(), state))


def idempotency_key() -> str | None:
    """The request's Idempotency-Key header, checked."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (1 <= len(key) <= 255 and "\x00" not in key):
        raise InvalidInput("Idempotency-Key must be 1-255 characters, none of them NUL")
    return key


def task_spec(data: dict[str, Any]) -> TaskSpec:
    """The spec of a task body as ``TaskIn`` loaded it."""
    mode, is_async = data["mode"], data["is_async"]
    if mode is not None and is_async is not None and (mode == TaskMode.CALLBACK) != is_async:
        raise InvalidInput("async and mode disagree", {"async": is_async, "mode": mode})
    if mode is None:
        mode = TaskMode.CALLBACK if is_async else TaskMode.SYNC
    run_at, delay = data.get("run_at"), data.get("delay")
    return TaskSpec(
        type=data["type"],
        payload=data["payload"],
        priority=data["priority"],
        capabilities=tuple(dict.fromkeys(data["capabilities"])),
        mode=TaskMode(mode),
        timeout_s=data["timeout"],
        max_retries=data["max_retries"],
        region=data["region"],
        group=data["group"],
        poll_interval_s=data["poll_interval"],
        poll_max_attempts=data["poll_max_attempts"],
        metadata=data["metadata"],
        run_at_ms=deferral.start_ms(
            datetime_to_ms(run_at), delay, ctx().now_ms() if delay is not None else 0
        ),
        depends_on=tuple(dict.fromkeys(data.get("depends_on") or ())),
        stream=data["stream"],
    )


@bp.post("/task")
@requires("client", "admin")
@bp.input(TaskIn, arg_name="data")
@bp.output(
    TaskOut,
    status_code=201,
    description="The task, stored: PENDING and queued, SCHEDULED (runAt/delay) or WAITING (dependsOn)",
)
@bp.doc(
    responses={
        200: "The task first created with this Idempotency-Key",
        422: "Invalid body; or dependsOn names an unknown, another owner's or already failed task",
    },
    **BEARER,
)
def create_task(data: dict[str, Any]) -> Any:
    caller = current_caller()
    state, created = submit.submit(
        ctx(), caller.subject, task_spec(data), idempotency_key(), as_admin=caller.is_admin
    )
    return task_view(state), 201 if created else 200


@bp.get("/task/<task_id>")
@requires("client", "admin")
@bp.output(TaskOut)
@bp.doc(responses={404: "No such task (or not yours)"}, **BEARER)
def get_task(task_id: str) -> Any:
    return _shown(control.visible_task(ctx(), task_id, current_caller().owner_filter))


@bp.get("/task/<task_id>/attempts")
@requires("client", "admin")
@bp.output(AttemptList)
@bp.doc(
    description="Every attempt of the task, oldest first, with what the backend reported.",
    responses={404: "No such task (or not yours)"},
    **BEARER,
)
def task_attempts(task_id: str) -> Any:
    found = control.attempts(ctx(), task_id, current_caller().owner_filter)
    return {"items": [attempt_view(attempt) for attempt in found]}


@bp.get("/task/<task_id>/transitions")
@requires("client", "admin")
@bp.output(TaskHistoryOut)
@bp.doc(responses={404: "No such task (or not yours)"}, **BEARER)
def task_history(task_id: str) -> Any:
    """Every state change of the task and every attempt (server, start, end, outcome,
    error), oldest first, from the durable records."""
    return history_view(*control.history(ctx(), task_id, current_caller().owner_filter))


@bp.get("/tasks")
@requires("client", "admin")
@bp.input(TaskListQuery, location="query", arg_name="query")
@bp.output(TaskPage)
@bp.doc(responses={403: "Another owner's tasks asked for without the admin role"}, **BEARER)
def list_tasks(query: dict[str, Any]) -> Any:
    caller, owner = current_caller(), query["owner"]
    if owner is not None and not caller.is_admin and owner != caller.subject:
        raise Forbidden("only an admin may list another owner's tasks")
    states, next_cursor = control.list_tasks(
        ctx(), owner or caller.owner_filter, query["status"], query["type"], query["limit"], query["cursor"]
    )
    return {"items": [task_view(state) for state in states], "next_cursor": next_cursor}


@bp.post("/task/<task_id>/cancel")
@requires("client", "admin")
@bp.output(TaskOut)
@bp.doc(responses={404: "No such task", 409: "Task already final"}, **BEARER)
def cancel_task(task_id: str) -> Any:
    return _shown(control.cancel(ctx(), task_id, current_caller().owner_filter))


@bp.post("/task/<task_id>/retry")
@requires("client", "admin")
@bp.output(TaskOut)
@bp.doc(responses={404: "No such task", 409: "Task is not FAILED or TIMEOUT"}, **BEARER)
def retry_task(task_id: str) -> Any:
    return _shown(control.retry(ctx(), task_id, current_caller().owner_filter))


def callback_credentials_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """401 for a missing, forged or expired callback token, or a missing or bad signature
    where one is needed, before the body is validated as an update."""

    @wraps(view)
    def wrapper(task_id: str, **kwargs: Any) -> Any:
        context = ctx()
        g.callback_claim = outcomes.check_callback_token(context, task_id, request.args.get("token"))
        g.callback_state = outcomes.authenticate_callback(
            context,
            task_id,
            g.callback_claim,
            request.get_data(cache=True),  # read only once the token is good
            request.headers.get(signatures.HEADER),
        )
        return view(task_id, **kwargs)

    return wrapper


@bp.put("/task/<task_id>")
@callback_credentials_required
@bp.input(CallbackQuery, location="query", arg_name="query")
@bp.input(CallbackIn, arg_name="update")
@bp.output(TaskOut)
@bp.doc(
    summary="Backend callback",
    description=(
        "Authenticated by the signed token in the callback URL, not a JWT. A backend may "
        "also sign the body with its apiKey: X-Taskfleet-Signature: t=<unix seconds>,"
        'v1=<hex HMAC-SHA256 of "<t>." + body>, accepted within 300 s; a bad one is 401. '
        'A server registered with callbackSignature "required" (or, with an apiKey, under '
        "CALLBACK_SIGNATURE=required) must sign every callback: an unsigned one is 401. "
        "A PROCESSING update that changes nothing (same or lower progress, same metadata) "
        "is answered 200 with the task as it is, and records nothing."
    ),
    responses={
        401: "Token forged or expired; signature bad, or missing where required",
        403: "Token of another task",
        404: "No such task",
        409: "Task final or attempt superseded",
    },
)
def task_callback(task_id: str, query: dict[str, Any], update: dict[str, Any]) -> Any:
    return _shown(
        outcomes.callback(ctx(), task_id, g.callback_claim.attempt, update, current=g.callback_state)
    )
