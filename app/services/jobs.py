"""Jobs: many tasks submitted in one request, read and cancelled together.

Accepting a job costs a few statements, not a few per task: the rows go in multi-row
INSERTs in one transaction, the hot state in pipelined script calls, and the tasks wait
in their waiting lines (one ZADD per requirement profile) instead of each getting a
Celery message: the free slots wake as many as they can take, and every freed slot wakes
the next, as for any task that found no server."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import jobs as job_names
from app.core import deferral, job_graph
from app.core.errors import InvalidInput, NotFound, StoreUnavailable
from app.core.ids import ordered_ids
from app.core.job_status import JobStatus, job_status, progress
from app.core.states import TaskStatus
from app.core.task import TaskSpec, TaskState
from app.services import client_limits, control, deferred, statistics, waiting
from app.services.context import Context
from app.store import dependencies_repo, jobs_repo, tasks_repo
from app.store.jobs_repo import JobRecord, JobTally

log = logging.getLogger("taskfleet.jobs")


@dataclass(frozen=True)
class Job:
    id: str
    owner: str
    name: str | None
    total: int
    created_ms: int
    cancelled_ms: int | None
    tally: JobTally
    #: In item order; None where a listing leaves them out.
    task_ids: list[str] | None = None

    @property
    def status(self) -> JobStatus:
        return job_status(self.tally.counts, self.total, self.cancelled_ms is not None)

    @property
    def progress(self) -> int:
        return progress(self.tally.counts, self.total)

    @property
    def finished_ms(self) -> int | None:
        if self.cancelled_ms is not None:
            return self.cancelled_ms
        return self.tally.last_finished_ms if self.status is not JobStatus.RUNNING else None


def _job(record: JobRecord, tally: JobTally, task_ids: list[str] | None) -> Job:
    return Job(
        id=record.id,
        owner=record.owner,
        name=record.name,
        total=record.total,
        created_ms=record.created_ms,
        cancelled_ms=record.cancelled_ms,
        tally=tally,
        task_ids=task_ids,
    )


def submit(
    ctx: Context,
    owner: str,
    name: str | None,
    specs: list[TaskSpec],
    idempotency_key: str | None = None,
    as_admin: bool = False,
) -> tuple[Job, bool]:
    """Store a job and all its tasks, or nothing (a bad item refuses the whole job).
    Items may start later (``run_at_ms``) and wait for other tasks (``depends_on``: ids
    of tasks ``owner`` may read, or anyone's ``as_admin``, or sibling items' keys).
    Returns (job, created); the same owner and ``idempotency_key`` return the first job."""
    if idempotency_key:
        existing = _by_idempotency_key(ctx, owner, idempotency_key)
        if existing is not None:
            return existing, False
    _check_keys(specs)
    with client_limits.admitted(ctx, owner, len(specs)) as admission:
        job, created = _create(ctx, owner, name, specs, idempotency_key, as_admin)
        admission.stored = created
    return job, created


def _create(
    ctx: Context,
    owner: str,
    name: str | None,
    specs: list[TaskSpec],
    idempotency_key: str | None,
    as_admin: bool,
) -> tuple[Job, bool]:
    """``submit`` once the client's limits admitted the job's tasks."""
    now = ctx.now_ms()
    job_id = str(uuid.uuid4())
    ids = ordered_ids(now, len(specs))
    graph = job_graph.resolve([s.job_key for s in specs], [s.depends_on for s in specs], ids)
    external = _external_statuses(ctx, graph, None if as_admin else owner)
    states = []
    for task_id, spec, depends_on in zip(ids, specs, graph.depends_on, strict=True):
        # A sibling is new, so not COMPLETED: waiting for one means WAITING.
        statuses = {dep: external.get(dep, TaskStatus.PENDING) for dep in depends_on}
        states.append(
            TaskState(
                id=task_id,
                owner=owner,
                spec=replace(spec, job_id=job_id, depends_on=depends_on),
                status=deferred.initial_status(spec.run_at_ms, statuses, now),
                version=1,
                created_ms=now,
                updated_ms=now,
            )
        )
    # Before anything is stored: past the cap on waiting profiles the whole job is refused.
    waiting.admit(ctx, [state.spec for state in states if state.status is TaskStatus.PENDING])
    edges = [(state.id, dep) for state in states for dep in state.spec.depends_on]
    record = JobRecord(id=job_id, owner=owner, name=name, total=len(states), created_ms=now)
    try:
        with ctx.db.session() as session:
            jobs_repo.insert(session, record, idempotency_key)
            tasks_repo.insert_many(session, states, edges)
    except IntegrityError:
        if not idempotency_key:
            raise
        existing = _by_idempotency_key(ctx, owner, idempotency_key)
        assert existing is not None, "unique violation without the conflicting job"
        return existing, False
    _start(ctx, [state for state in states if state.status is TaskStatus.PENDING])
    deferred.after_insert(ctx, states)  # SCHEDULED and WAITING ones
    log.info("job %s accepted: %d tasks", job_id, len(states), extra={"job_id": job_id})
    counts = Counter(state.status.value for state in states)
    return _job(record, JobTally(dict(counts)), ids), True


def _external_statuses(ctx: Context, graph: job_graph.JobGraph, reader: str | None) -> dict[str, TaskStatus]:
    """The status of each task outside the job that items wait for; ``InvalidInput``
    naming each item whose dependencies are wrong: a cycle among siblings, too many, or
    tasks that are unknown, not ``reader``'s (None: an admin) or already failed."""
    problems: dict[str, dict[str, Any]] = {}
    for index, reason in graph.problems.items():
        problems[str(index)] = {"dependsOn": [reason]}
    for index, depends_on in enumerate(graph.depends_on):
        if len(depends_on) > deferral.MAX_DEPENDENCIES:
            problems[str(index)] = {"dependsOn": [f"at most {deferral.MAX_DEPENDENCIES} dependencies"]}
    found = {}
    if graph.external:
        with ctx.db.session() as session:
            found = dependencies_repo.owners_and_statuses(session, graph.external)
    wrong = deferral.dependency_problems(graph.external, found, reader)
    if wrong:
        for index, depends_on in enumerate(graph.depends_on):
            bad = {dep: wrong[dep] for dep in depends_on if dep in wrong}
            if bad:
                problems.setdefault(str(index), {})["dependsOn"] = bad
    if problems:
        raise InvalidInput(
            "items' dependsOn name tasks that cannot be waited for", {"json": {"tasks": problems}}
        )
    return {dep: status for dep, (_, status) in found.items()}


def _check_keys(specs: list[TaskSpec]) -> None:
    """Item keys are unique within the job."""
    first: dict[str, int] = {}
    bad: dict[str, dict[str, list[str]]] = {}
    for index, spec in enumerate(specs):
        if spec.job_key is None:
            continue
        if spec.job_key in first:
            bad[str(index)] = {"key": [f"already the key of item {first[spec.job_key]}"]}
        else:
            first[spec.job_key] = index
    if bad:
        raise InvalidInput("item keys must be unique within a job", {"json": {"tasks": bad}})


def _start(ctx: Context, pending: list[TaskState]) -> None:
    """The job is durable: give its PENDING tasks hot state, line them up, and have a
    worker wake as many as the fleet has free slots. If Redis fails here the answer is
    still 201: the orphan sweep finds PENDING tasks that are in no line."""
    if not pending:
        return
    try:
        ctx.tasks.put_many_if_absent(pending, new=True)
        waiting.park_many(ctx, pending)
    except StoreUnavailable:
        log.warning("job tasks stored but not lined up; the orphan sweep will pick them up")
        for state in pending:
            statistics.mark_missed(ctx, state.created_ms)
        return
    try:
        # A worker wakes as many as the free slots take: one dispatch message each,
        # which is too slow to send from the request when thousands can start at once.
        ctx.queue.call_later(job_names.WAKE_WAITING_NOW, [])
    except StoreUnavailable:
        log.warning("job tasks lined up but no wake-up sent; the wake_waiting routine starts them")


def _by_idempotency_key(ctx: Context, owner: str, key: str) -> Job | None:
    with ctx.db.session() as session:
        row = jobs_repo.find_by_idempotency_key(session, owner, key)
        return None if row is None else _read(session, row, with_task_ids=True)


def _read(session: Session, row: JobRecord, with_task_ids: bool) -> Job:
    """The job of ``row`` with its live counts (and its task ids), in the caller's session."""
    task_ids = jobs_repo.task_ids(session, row.id) if with_task_ids else None
    return _job(row, jobs_repo.tallies(session, [row.id])[row.id], task_ids)


def _visible_row(session: Session, job_id: str, owner: str | None) -> JobRecord:
    row = jobs_repo.get(session, job_id)
    if row is None or (owner is not None and row.owner != owner):
        raise NotFound(f"job {job_id} not found")
    return row


def get(ctx: Context, job_id: str, owner: str | None) -> Job:
    """The job with live counts, if ``owner`` may see it (None: an admin); one session."""
    with ctx.db.session() as session:
        return _read(session, _visible_row(session, job_id, owner), with_task_ids=True)


def summary(ctx: Context, job_id: str, owner: str | None) -> Job:
    """``get`` without the task ids (a job may have many thousands)."""
    with ctx.db.session() as session:
        return _read(session, _visible_row(session, job_id, owner), with_task_ids=False)


def list_jobs(
    ctx: Context, owner: str | None, limit: int, cursor: str | None
) -> tuple[list[Job], str | None]:
    """A page of jobs ``owner`` may see, newest first, with their counts."""
    with ctx.db.session() as session:
        rows, next_cursor = jobs_repo.list_jobs(session, owner, limit, cursor)
        tallies = jobs_repo.tallies(session, [row.id for row in rows])
    return [_job(row, tallies[row.id], None) for row in rows], next_cursor


def tasks(
    ctx: Context, job_id: str, owner: str | None, status: str | None, limit: int, cursor: str | None
) -> tuple[list[TaskState], str | None]:
    """A page of the job's tasks in item order; the cursor is the last id returned."""
    with ctx.db.session() as session:
        _visible_row(session, job_id, owner)
        rows, next_cursor = jobs_repo.tasks_page(
            session, job_id, TaskStatus(status) if status else None, limit, cursor
        )
        return [tasks_repo.row_to_state(r) for r in rows], next_cursor


def cancel(ctx: Context, job_id: str, owner: str | None) -> Job:
    """Mark the job cancelled and cancel each of its unfinished tasks (as
    ``POST /api/task/{id}/cancel`` would). Cancelling again finishes what a first call
    cut short."""
    with ctx.db.session() as session:
        row = _visible_row(session, job_id, owner)
        jobs_repo.mark_cancelled(session, job_id, ctx.now_ms())
        unfinished = jobs_repo.unfinished_task_ids(session, job_id)
    cancelled = control.cancel_many(ctx, unfinished)
    log.info("job %s cancelled: %d tasks", job_id, cancelled, extra={"job_id": job_id})
    return get(ctx, row.id, None)
