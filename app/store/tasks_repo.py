"""Durable task records: inserts, reads, and the database following the hot state."""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Table, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from app.core import events
from app.core.clock import datetime_to_ms, ms_to_datetime
from app.core.errors import InvalidInput, StoreUnavailable
from app.core.states import FINAL_STATUSES, AttemptOutcome, TaskMode, TaskStatus
from app.core.task import DEFAULT_POLL_INTERVAL_S, DEFAULT_POLL_MAX_ATTEMPTS, TaskAttempt, TaskSpec, TaskState
from app.store.db import Database, bulk_insert, dialect_insert
from app.store.models import TaskAttemptRow, TaskDependencyRow, TaskRow, TaskTransitionRow


def row_to_state(row: TaskRow) -> TaskState:
    return TaskState(
        id=row.id,
        owner=row.owner,
        spec=TaskSpec(
            type=row.type,
            payload=row.payload,
            priority=row.priority,
            capabilities=tuple(row.capabilities or ()),
            mode=TaskMode(row.mode),
            timeout_s=row.timeout_s,
            max_retries=row.max_retries,
            region=row.region,
            group=row.server_group,
            poll_interval_s=row.poll_interval_s or DEFAULT_POLL_INTERVAL_S,
            poll_max_attempts=row.poll_max_attempts or DEFAULT_POLL_MAX_ATTEMPTS,
            metadata=row.meta,
            run_at_ms=datetime_to_ms(row.run_at),
            depends_on=tuple(row.depends_on or ()),
            job_id=row.job_id,
            job_key=row.job_key,
            stream=bool(row.stream),
        ),
        status=TaskStatus(row.status),
        version=row.version,
        created_ms=datetime_to_ms(row.created_at) or 0,
        updated_ms=datetime_to_ms(row.updated_at) or 0,
        attempt=row.attempts,
        retry_base=row.retry_base,
        progress=row.progress,
        server_id=row.server_id,
        result=row.result,
        error=row.error,
        started_ms=datetime_to_ms(row.started_at),
        finished_ms=datetime_to_ms(row.finished_at),
    )


#: The row columns that mirror the hot state, and how each is read from it.
_SNAPSHOT: dict[str, Callable[[TaskState], Any]] = {
    "status": lambda state: state.status.value,
    "version": lambda state: state.version,
    "attempts": lambda state: state.attempt,
    "retry_base": lambda state: state.retry_base,
    "progress": lambda state: state.progress,
    "server_id": lambda state: state.server_id,
    "result": lambda state: state.result,
    "error": lambda state: state.error,
    "updated_at": lambda state: ms_to_datetime(state.updated_ms),
    "started_at": lambda state: ms_to_datetime(state.started_ms),
    "finished_at": lambda state: ms_to_datetime(state.finished_ms),
}


def _snapshot_columns(state: TaskState) -> dict[str, Any]:
    return {name: read(state) for name, read in _SNAPSHOT.items()}


@dataclass(frozen=True)
class AttemptEnd:
    """How an attempt ended, for its durable record (``attempt`` None: the task's
    current attempt). ``metadata``: what the backend reported with the end (a callback's
    or poll answer's ``metadata``); None keeps what the attempt has."""

    attempt: int | None
    outcome: AttemptOutcome
    error: str | None
    at_ms: int
    metadata: dict[str, Any] | None = None


def insert_task(db: Database, state: TaskState, idempotency_key: str | None) -> None:
    """Store a new task with its first transition (one statement on Postgres). Raises
    ``IntegrityError`` when the owner already has a task with ``idempotency_key``."""
    params = {
        **{f"task__{name}": value for name, value in task_row_values(state, idempotency_key).items()},
        **_transition_params(state, None, state.created_ms),
    }
    _run(db, _insert_statements(db.engine.dialect.name), params)


def task_row_values(state: TaskState, idempotency_key: str | None = None) -> dict[str, Any]:
    """A new task's row, column by column."""
    spec = state.spec
    return {
        "id": state.id,
        "owner": state.owner,
        "type": spec.type,
        "priority": spec.priority,
        "payload": spec.payload,
        "metadata": spec.metadata,
        "capabilities": list(spec.capabilities),
        "mode": spec.mode.value,
        "region": spec.region,
        "server_group": spec.group,
        "max_retries": spec.max_retries,
        "timeout_s": spec.timeout_s,
        "poll_interval_s": spec.poll_interval_s,
        "poll_max_attempts": spec.poll_max_attempts,
        "idempotency_key": idempotency_key,
        "job_id": spec.job_id,
        "job_key": spec.job_key,
        "stream": spec.stream,
        "run_at": ms_to_datetime(spec.run_at_ms),
        "depends_on": list(spec.depends_on) or None,
        "has_dependents": False,
        "created_at": ms_to_datetime(state.created_ms),
        **_snapshot_columns(state),
    }


def first_transition_row(state: TaskState) -> dict[str, Any]:
    """A new task's first transition (into its first status), column by column."""
    return {
        name.removeprefix("transition__"): value
        for name, value in _transition_params(state, None, state.created_ms).items()
    }


def insert_many(session: Session, states: list[TaskState], edges: Iterable[tuple[str, str]] = ()) -> None:
    """Store new tasks, their first transitions and their dependency edges (task id,
    dependency id) in the session's transaction: a few multi-row INSERTs for them all."""
    if not states:
        return
    bulk_insert(session, TaskRow.__table__, [task_row_values(state) for state in states])
    bulk_insert(session, TaskTransitionRow.__table__, [first_transition_row(state) for state in states])
    edges = list(edges)
    bulk_insert(
        session,
        TaskDependencyRow.__table__,
        [{"task_id": task_id, "depends_on_id": dep} for task_id, dep in edges],
    )
    mark_has_dependents(session, {dep for _, dep in edges})


def mark_has_dependents(session: Session, dependency_ids: Iterable[str]) -> None:
    """Flag the tasks new ones depend on (``TaskRow.has_dependents``), in the new tasks'
    transaction. The UPDATE takes each row's lock, so a dependency's final write either
    comes after this commit and reads the flag, or comes first and this transaction's
    tasks see it final when they are re-checked after their commit
    (``deferred.after_insert``): either way one of the two settles them."""
    ids = sorted(set(dependency_ids))
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        session.execute(
            update(TaskRow)
            .where(TaskRow.id.in_(chunk), TaskRow.has_dependents.is_(False))
            .values(has_dependents=True)
        )


def find_by_idempotency_key(session: Session, owner: str, key: str) -> TaskRow | None:
    return session.scalars(
        select(TaskRow).where(TaskRow.owner == owner, TaskRow.idempotency_key == key)
    ).first()


def get_row(session: Session, task_id: str) -> TaskRow | None:
    return session.get(TaskRow, task_id)


def payload_of(session: Session, task_id: str) -> Any:
    """The task's payload alone (the hot state leaves large ones to the database)."""
    return session.scalar(select(TaskRow.payload).where(TaskRow.id == task_id))


@dataclass(frozen=True)
class Followed:
    """What ``follow`` did: ``written`` is False when the row was newer (nothing moved
    backwards); ``may_have_dependents`` is False only when the row said no task depends
    on this one (``TaskRow.has_dependents``, read by the write itself on Postgres)."""

    written: bool
    may_have_dependents: bool = True


def follow(
    db: Database,
    state: TaskState,
    from_status: TaskStatus | None,
    attempt_end: AttemptEnd | None = None,
    attempt_metadata: dict[str, Any] | None = None,
) -> Followed:
    """Bring the row up to ``state`` unless it already holds a newer version, and record
    the transition (and the attempt it starts or ends; ``attempt_metadata``: what the
    backend reported about the running attempt, kept on its row while it is open).
    Every part is idempotent, so following the same state twice records it once. On
    Postgres this is one statement, one round trip."""
    values = {"task": {"id": state.id, **_snapshot_columns(state)}}
    if state.status is TaskStatus.PROCESSING and from_status is TaskStatus.PENDING:
        values["attempt_start"] = {
            "task_id": state.id,
            "attempt": state.attempt,
            "server_id": state.server_id or "",
            "started_at": ms_to_datetime(state.updated_ms),
        }
    if attempt_end is not None:
        values["attempt_end"] = {
            "task_id": state.id,
            "attempt": state.attempt if attempt_end.attempt is None else attempt_end.attempt,
            "finished_at": ms_to_datetime(attempt_end.at_ms),
            "outcome": attempt_end.outcome.value,
            "error": attempt_end.error,
        }
        if attempt_end.metadata is not None:
            values["attempt_end"]["metadata"] = attempt_end.metadata
    if attempt_metadata is not None:
        values["attempt_note"] = {"task_id": state.id, "attempt": state.attempt, "metadata": attempt_metadata}
    params = {f"{part}__{name}": value for part, columns in values.items() for name, value in columns.items()}
    params.update(_transition_params(state, from_status, state.updated_ms))
    statements = _follow_statements(
        db.engine.dialect.name,
        "attempt_start" in values,
        "attempt_end" in values,
        "metadata" in values.get("attempt_end", {}),
        "attempt_note" in values,
    )
    try:
        return _run_follow(db, statements, params)
    except StoreUnavailable as exc:
        if not _was_stale(exc):
            raise
        # A pooled connection the server had dropped (a restart, a failover): the pool
        # has replaced it now, and following is idempotent, so once more.
        return _run_follow(db, statements, params)


def _run_follow(db: Database, statements: Select[Any] | list[Any], params: dict[str, Any]) -> Followed:
    with db.write_connection() as conn:
        if isinstance(statements, Select):
            written, dependents = conn.execute(statements, params).one()
            return Followed(bool(written), bool(written == 0 or dependents))
        written = conn.execute(statements[0], params).rowcount
        for statement in statements[1:]:
            conn.execute(statement, params)
        return Followed(bool(written))


def follow_many(db: Database, states: list[TaskState]) -> None:
    """``follow`` for many transitions that neither start nor end an attempt (e.g.
    PENDING -> CANCELLED): one UPDATE and one INSERT, each executed for them all."""
    if not states:
        return
    dialect = db.engine.dialect.name
    tasks = TaskRow.__table__
    task = _binds("task", tasks, ["id", *_SNAPSHOT])
    advance = (
        update(tasks).where(tasks.c.id == task.pop("id"), tasks.c.version < task["version"]).values(task)
    )
    rows = [
        {
            **{
                f"task__{name}": value for name, value in {"id": state.id, **_snapshot_columns(state)}.items()
            },
            **_transition_params(state, state.from_status, state.updated_ms),
        }
        for state in states
    ]
    with db.write_connection() as conn:
        conn.execute(advance, rows)
        conn.execute(_record(dialect), rows)


def _was_stale(exc: StoreUnavailable) -> bool:
    cause = exc.__cause__
    return isinstance(cause, DBAPIError) and bool(cause.connection_invalidated)


def _transition_params(state: TaskState, from_status: TaskStatus | None, at_ms: int) -> dict[str, Any]:
    return {
        "transition__task_id": state.id,
        "transition__version": state.version,
        "transition__from_status": from_status.value if from_status else None,
        "transition__to_status": state.status.value,
        "transition__attempt": state.attempt,
        "transition__at": ms_to_datetime(at_ms),
        "transition__server_id": state.server_id,
        "transition__progress": state.progress,
        "transition__error": events.error_shown(
            state.status.value, state.attempt_outcome.value if state.attempt_outcome else None, state.error
        ),
    }


def _run(db: Database, statements: Select[Any] | list[Any], params: dict[str, Any]) -> int:
    """Run what ``_combine`` built; returns the rows the first part wrote."""
    with db.write_connection() as conn:
        if isinstance(statements, Select):
            return int(conn.execute(statements, params).scalar() or 0)
        written = conn.execute(statements[0], params).rowcount
        for statement in statements[1:]:
            conn.execute(statement, params)
        return int(written)


def _combine(dialect: str, first: Any, key: Any, parts: list[Any]) -> Select[Any] | list[Any]:
    """Several writes as one: for Postgres a single statement whose parts are
    data-modifying CTEs, counting the rows ``first`` wrote (``key``: a column it
    returns); elsewhere the list of statements, to run in one transaction."""
    if dialect != "postgresql":
        return [first, *parts]
    combined = select(func.count()).select_from(first.returning(key).cte("first"))
    for i, part in enumerate(parts):
        combined = combined.add_cte(part.cte(f"part{i}"))
    return combined


@functools.cache
def _insert_statements(dialect: str) -> Select[Any] | list[Any]:
    """The statements of ``insert_task``, built once."""
    tasks = TaskRow.__table__
    columns = [c.name for c in tasks.columns]
    return _combine(
        dialect, insert(tasks).values(_binds("task", tasks, columns)), tasks.c.id, [_record(dialect)]
    )


def _record(dialect: str) -> Any:
    """The INSERT of a transition (none twice)."""
    transitions = TaskTransitionRow.__table__
    names = [
        "task_id",
        "version",
        "from_status",
        "to_status",
        "attempt",
        "at",
        "server_id",
        "progress",
        "error",
    ]
    return (
        dialect_insert(dialect)(transitions)
        .values(_binds("transition", transitions, names))
        .on_conflict_do_nothing()
    )


def _binds(part: str, table: Table, names: Iterable[str]) -> dict[str, BindParameter[Any]]:
    """Parameters named ``<part>__<column>`` for ``names``, typed like the columns (a
    name must not be a column's: an execution parameter named like a column joins
    the SET clause)."""
    return {name: bindparam(f"{part}__{name}", type_=table.c[name].type) for name in names}


@functools.cache
def _follow_statements(
    dialect: str, starts_attempt: bool, ends_attempt: bool, end_metadata: bool, notes_attempt: bool
) -> Select[Any] | list[Any]:
    """The statements of ``follow``, built once for each combination of parts."""
    tasks, attempts = TaskRow.__table__, TaskAttemptRow.__table__
    task = _binds("task", tasks, ["id", *_SNAPSHOT])
    advance = (
        update(tasks).where(tasks.c.id == task.pop("id"), tasks.c.version < task["version"]).values(task)
    )
    parts = [_record(dialect)]
    if starts_attempt:
        start = _binds("attempt_start", attempts, ["task_id", "attempt", "server_id", "started_at"])
        parts.append(dialect_insert(dialect)(attempts).values(start).on_conflict_do_nothing())
    if ends_attempt:
        names = ["task_id", "attempt", "finished_at", "outcome", "error"] + (
            ["metadata"] if end_metadata else []
        )
        parts.append(_update_open_attempt(_binds("attempt_end", attempts, names)))
    if notes_attempt:
        parts.append(
            _update_open_attempt(_binds("attempt_note", attempts, ["task_id", "attempt", "metadata"]))
        )
    if dialect != "postgresql":
        return [advance, *parts]
    # The rows written, and whether the written row has dependents (its lock is held).
    first = advance.returning(tasks.c.id, tasks.c.has_dependents).cte("first")
    dependents = func.coalesce(func.bool_or(first.c.has_dependents), False)
    combined = select(func.count(), dependents).select_from(first)
    for i, part in enumerate(parts):
        combined = combined.add_cte(part.cte(f"part{i}"))
    return combined


def _update_open_attempt(binds: dict[str, BindParameter[Any]]) -> Any:
    """The UPDATE of an attempt that has not ended yet (``binds``: its task_id and
    attempt, then the columns to set)."""
    attempts = TaskAttemptRow.__table__
    return (
        update(attempts)
        .where(
            attempts.c.task_id == binds.pop("task_id"),
            attempts.c.attempt == binds.pop("attempt"),
            attempts.c.finished_at.is_(None),
        )
        .values(binds)
    )


def owner_of(session: Session, task_id: str) -> str | None:
    """The task's owner (None: no such task), without loading the rest of the row."""
    return session.scalar(select(TaskRow.owner).where(TaskRow.id == task_id))


def row_to_attempt(row: TaskAttemptRow) -> TaskAttempt:
    return TaskAttempt(
        attempt=row.attempt,
        server_id=row.server_id,
        started_ms=datetime_to_ms(row.started_at) or 0,
        ended_ms=datetime_to_ms(row.finished_at),
        outcome=AttemptOutcome(row.outcome) if row.outcome else None,
        error=row.error,
        metadata=row.meta,
    )


def attempt_metadata_of(session: Session, task_id: str, attempt: int) -> dict[str, Any] | None:
    """What the backend last reported about one attempt (None: nothing, or no record)."""
    return session.scalar(
        select(TaskAttemptRow.meta).where(
            TaskAttemptRow.task_id == task_id, TaskAttemptRow.attempt == attempt
        )
    )


def attempts_of(session: Session, task_id: str) -> list[TaskAttemptRow]:
    return list(
        session.scalars(
            select(TaskAttemptRow).where(TaskAttemptRow.task_id == task_id).order_by(TaskAttemptRow.attempt)
        )
    )


def transitions_of(session: Session, task_id: str) -> list[TaskTransitionRow]:
    return list(
        session.scalars(
            select(TaskTransitionRow)
            .where(TaskTransitionRow.task_id == task_id)
            .order_by(TaskTransitionRow.version)
        )
    )


def encode_cursor(created_at: datetime, task_id: str) -> str:
    raw = json.dumps([datetime_to_ms(created_at), task_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_ms, task_id = json.loads(base64.urlsafe_b64decode(padded))
        created = ms_to_datetime(int(created_ms))
        assert created is not None and isinstance(task_id, str)
        return created, task_id
    except (ValueError, TypeError, AssertionError, OverflowError, OSError) as exc:
        raise InvalidInput("cursor is not one this API returned", {"cursor": cursor}) from exc


def list_tasks(
    session: Session,
    owner: str | None,
    status: str | None,
    task_type: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[TaskRow], str | None]:
    """Newest first, ``limit`` at a time; the cursor continues after the last row."""
    query = select(TaskRow)
    if owner is not None:
        query = query.where(TaskRow.owner == owner)
    if status:
        query = query.where(TaskRow.status == status)
    if task_type:
        query = query.where(TaskRow.type == task_type)
    if cursor:
        created, last_id = decode_cursor(cursor)
        query = query.where(
            or_(
                TaskRow.created_at < created,
                and_(TaskRow.created_at == created, TaskRow.id < last_id),
            )
        )
    rows = list(
        session.scalars(query.order_by(TaskRow.created_at.desc(), TaskRow.id.desc()).limit(limit + 1))
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
    return rows, next_cursor


def delete_unstarted(db: Database, task_id: str) -> bool:
    """Delete a task that never left PENDING nor had an attempt (a submit taken back),
    with its transition and edges (cascade). False if it is gone or has moved on."""
    with db.session() as session:
        deleted = session.execute(
            delete(TaskRow)
            .where(TaskRow.id == task_id, TaskRow.status == TaskStatus.PENDING.value, TaskRow.attempts == 0)
            .execution_options(synchronize_session=False)
        ).rowcount
    return bool(deleted)


def in_status(session: Session, statuses: Iterable[TaskStatus], after_id: str, limit: int) -> list[TaskRow]:
    """Tasks in ``statuses``, by id after ``after_id`` (keyset pages for a full scan)."""
    return list(
        session.scalars(
            select(TaskRow)
            .where(TaskRow.status.in_([s.value for s in statuses]), TaskRow.id > after_id)
            .order_by(TaskRow.id)
            .limit(limit)
        )
    )


def count_by_status(session: Session, statuses: Iterable[TaskStatus]) -> dict[tuple[str, str], int]:
    """How many tasks are in each of ``statuses`` now, by (type, status)."""
    query = (
        select(TaskRow.type, TaskRow.status, func.count())
        .where(TaskRow.status.in_([s.value for s in statuses]))
        .group_by(TaskRow.type, TaskRow.status)
    )
    return {(task_type, status): n for task_type, status, n in session.execute(query)}


def finished_by_status_since(session: Session, since_ms: int) -> dict[str, int]:
    """Transitions into each final state at or after ``since_ms``."""
    query = (
        select(TaskTransitionRow.to_status, func.count())
        .where(
            TaskTransitionRow.at >= ms_to_datetime(since_ms),
            TaskTransitionRow.to_status.in_([s.value for s in FINAL_STATUSES]),
        )
        .group_by(TaskTransitionRow.to_status)
    )
    return {status: n for status, n in session.execute(query)}


def set_poll_url(db: Database, task_id: str, attempt: int, url: str) -> None:
    """Record where a poll-mode attempt's status is read (so polling survives Redis)."""
    attempts = TaskAttemptRow.__table__
    with db.write_connection() as conn:
        conn.execute(
            update(attempts)
            .where(attempts.c.task_id == task_id, attempts.c.attempt == attempt)
            .values(poll_url=url)
        )


def poll_url_of(session: Session, task_id: str, attempt: int) -> str | None:
    return session.scalar(
        select(TaskAttemptRow.poll_url).where(
            TaskAttemptRow.task_id == task_id, TaskAttemptRow.attempt == attempt
        )
    )
