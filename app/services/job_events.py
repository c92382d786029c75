"""A job's event stream: each of its tasks' ``status`` events and ``job`` events with
its counts, read from the database (its tasks' transition rows), so it needs no Redis
stream per job and survives a Redis loss as it is.

Ids: ``<row>-0`` is the status event of transition row ``<row>`` (the rows' own
increasing id); ``<row>-1`` a ``job`` event sent once the rows up to ``<row>`` were.
Resuming after either continues with the rows after ``<row>``. The rows are read every
``POLL_S``; a row is sent only once it was seen one read earlier, so one whose id was
given before a row already sent, but committed after it, is not skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from app.core.clock import datetime_to_ms
from app.core.events import JOB, KEEPALIVE_S, STATUS, Event, EventId, status_data
from app.core.job_status import JobStatus
from app.services import jobs
from app.services.context import Context
from app.store import jobs_repo

#: Seconds between two reads of a job's rows (and at most between two ``job`` events).
POLL_S = 1.0
#: Rows read at most at once.
ROWS_PER_READ = 1000


def follow(
    ctx: Context,
    job_id: str,
    after: EventId,
    render: Callable[[jobs.Job], Any],
    keepalive_s: float = KEEPALIVE_S,
    poll_s: float = POLL_S,
) -> Iterator[Event | None]:
    """The job's events after ``after``; ends once the job is no longer RUNNING and every
    row of it was sent. ``None`` is a keep-alive."""
    cursor = after.version
    sent_job = after.seq >= 1
    horizon = cursor  # rows up to here were seen on an earlier read
    quiet_since = time.monotonic()
    while True:
        job = jobs.summary(ctx, job_id, None)  # read before the rows: a job over has every row written
        with ctx.db.session() as session:
            rows = jobs_repo.transitions_after(session, job_id, cursor, ROWS_PER_READ)
        over = job.status is not JobStatus.RUNNING
        ready = rows if over else [row for row in rows if row.id <= horizon]
        for row in ready:
            data = status_data(
                row.to_status, row.attempt, row.server_id, datetime_to_ms(row.at) or 0, row.error
            )
            yield Event(EventId(row.id, 0), STATUS, {"taskId": row.task_id, **data})
            cursor = row.id
        horizon = rows[-1].id if rows else cursor
        if ready or not sent_job:
            yield Event(EventId(cursor, 1), JOB, render(job))
            sent_job = True
            quiet_since = time.monotonic()
        if over and len(rows) < ROWS_PER_READ:
            return
        if len(ready) == ROWS_PER_READ:
            continue
        time.sleep(poll_s)
        if time.monotonic() - quiet_since >= keepalive_s:
            yield None
            quiet_since = time.monotonic()
