"""Retention: finished tasks older than ``RETENTION_DAYS`` leave the database, with
their attempts, transitions and dependency edges, a bounded amount per run (rules of
what stays in ``app.store.retention_repo``). Statistics rollups stay: the figures of
past hours and the all-time totals do not change."""

from __future__ import annotations

import logging

from app.core.clock import ms_to_datetime
from app.services.context import Context
from app.store import retention_repo

log = logging.getLogger("taskfleet.retention")

#: Tasks deleted per statement, and statements per run: a run stays short (the
#: routine runs every minute, so up to 600,000 tasks an hour).
BATCH = 1000
BATCHES_PER_RUN = 10
DAY_MS = 86_400_000


def purge(ctx: Context) -> dict[str, int]:
    """Delete finished tasks past the retention period; how many tasks and jobs went."""
    report = {"tasks": 0, "jobs": 0}
    days = ctx.settings.retention_days
    if days <= 0:
        return report  # kept forever
    before = ms_to_datetime(ctx.now_ms() - days * DAY_MS)
    assert before is not None
    for _ in range(BATCHES_PER_RUN):
        tasks, jobs = retention_repo.purge_finished(ctx.db, before, BATCH)
        report["tasks"] += tasks
        report["jobs"] += jobs
        if tasks < BATCH:
            break
    if report["tasks"] or report["jobs"]:
        log.info(
            "retention: deleted %d task(s) and %d job(s) finished more than %d day(s) ago",
            report["tasks"],
            report["jobs"],
            days,
        )
    return report
