"""How the CLI shows things: JSON, tables, a sparkline, a task's or a job's progress."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TextIO, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from taskfleet_client import Attempt, Event, Job, Limit, Server, Task

#: Eight heights, lowest first; an hour with nothing shows the lowest.
BLOCKS = "▁▂▃▄▅▆▇█"
#: Task statuses in the order a task goes through them (counts are shown in this order).
STATUSES = ["WAITING", "SCHEDULED", "PENDING", "PROCESSING", "COMPLETED", "FAILED", "TIMEOUT", "CANCELLED"]

Shown = TypeVar("Shown", Task, Job)


def sparkline(values: Sequence[float]) -> str:
    """One block per value, scaled to the largest: zero is the lowest block, anything
    above zero at least the second, so a quiet hour and an idle one differ."""
    top = max(values, default=0)
    if top <= 0:
        return BLOCKS[0] * len(values)
    return "".join(BLOCKS[0] if v <= 0 else BLOCKS[max(1, math.ceil(v / top * 7))] for v in values)


def console(stream: TextIO | None = None) -> Console:
    """A rich console on stdout (or ``stream``). Not on a terminal and without COLUMNS,
    rich would assume 80 columns and cut task ids; tables are only as wide as they need."""
    stream = stream or sys.stdout
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(file=stream, width=200 if wide else None, highlight=False)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def short(task_id: str) -> str:
    return task_id[:8]


def when(value: Any) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def tasks_table(tasks: Iterable[Task], keys: bool = False) -> Table:
    """One row per task; ``keys`` adds a KEY column (a job's item keys) after the id."""
    headers = ["ID", "KEY"] if keys else ["ID"]
    table = Table(*headers, "TYPE", "STATUS", "PROGRESS", "SERVER", "CREATED (UTC)", box=None, pad_edge=False)
    table.columns[0].no_wrap = True
    for task in tasks:
        progress = f"{task.progress}%" if task.status == "PROCESSING" else ""
        first = [task.id, task.key or ""] if keys else [task.id]
        table.add_row(*first, task.type, task.status, progress, task.server_id or "", when(task.created_at))
    return table


def counts(job: Job) -> str:
    """``COMPLETED 3, FAILED 1, PENDING 6``: the job's tasks by status, in the order a
    task goes through them (statuses this CLI does not know last)."""
    order = {status: i for i, status in enumerate(STATUSES)}
    found = sorted(job.counts.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))
    return ", ".join(f"{status} {n:,}" for status, n in found if n) or "no tasks"


def jobs_table(jobs: Iterable[Job]) -> Table:
    table = Table("ID", "NAME", "STATUS", "PROGRESS", "FINISHED", "CREATED (UTC)", box=None, pad_edge=False)
    table.columns[0].no_wrap = True
    for job in jobs:
        finished = f"{job.finished:,}/{job.total:,}"
        table.add_row(job.id, job.name or "", job.status, f"{job.progress}%", finished, when(job.created_at))
    return table


def job_summary(job: Job) -> list[str]:
    """The job's state in a few aligned lines."""
    rows = [
        ("job", job.id),
        ("name", job.name or "-"),
        ("status", job.status),
        ("progress", f"{job.progress}% ({job.finished:,} of {job.total:,} tasks finished)"),
        ("tasks", counts(job)),
        ("created", f"{when(job.created_at)} UTC"),
        ("finished", f"{when(job.finished_at)} UTC" if job.finished_at else "-"),
    ]
    return [f"{name:<10}{value}" for name, value in rows]


def rule(limit: Limit) -> str:
    """A limit's kind: ``static`` or its scaling rule."""
    scaling = limit.dynamic
    if scaling is None:
        return "static"
    return (
        f"{scaling.initial}-{scaling.max} by {scaling.step} "
        f"(up every {scaling.up_every_seconds} s, down every {scaling.down_every_seconds} s)"
    )


def limits_table(limits: Iterable[Limit]) -> Table:
    table = Table(
        "TYPE", "LIMIT", "IN FLIGHT", "WAITING", "RULE", "CHANGED (UTC)", "WHY", box=None, pad_edge=False
    )
    for limit in limits:
        change = limit.last_change
        table.add_row(
            limit.type,
            str(limit.current),
            str(limit.in_flight),
            str(limit.waiting),
            rule(limit),
            when(change.at) if change else "",
            change.reason if change else "",
        )
    return table


def attempts_table(attempts: Iterable[Attempt]) -> Table:
    table = Table(
        "#", "SERVER", "STARTED (UTC)", "ENDED (UTC)", "OUTCOME", "MS", "ERROR", box=None, pad_edge=False
    )
    for a in attempts:
        duration = "" if a.duration_ms is None else str(a.duration_ms)
        table.add_row(
            str(a.attempt),
            a.server_id or "",
            when(a.started_at),
            when(a.ended_at),
            a.outcome or "",
            duration,
            a.error or "",
        )
    return table


def servers_table(servers: Iterable[Server]) -> Table:
    table = Table(
        "ID", "NAME", "STATUS", "SLOTS", "CAPABILITIES", "GROUPS", "REGION", box=None, pad_edge=False
    )
    for server in servers:
        table.add_row(
            server.id,
            server.name,
            server.status,
            f"{server.in_flight}/{server.max_concurrent}",
            ",".join(server.capabilities),
            ",".join(server.groups),
            server.region or "",
        )
    return table


def label(task: Task) -> str:
    return f"{task.status} {task.progress}%" if task.status == "PROCESSING" else task.status


def job_label(job: Job) -> str:
    return f"{job.status} {job.progress}% ({job.finished:,}/{job.total:,}: {counts(job)})"


def follow(updates: Iterator[Task], task_id: str, bar: bool = True) -> Task:
    """Show a task's updates on stderr until the last one, and return it: a live bar
    from its progress on a terminal (unless ``bar`` is False), one line per change
    elsewhere (logs, CI)."""
    return _follow(updates, f"task {short(task_id)}", label, _task_percent, bar)


def _task_percent(task: Task) -> int:
    return 100 if task.ok else task.progress


class ChunkWriter:
    """Streamed output on stdout as it comes: text chunks as they are (tokens), any
    other JSON one per line; ``end`` closes the last line."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.open_line = False

    def write(self, event: Event) -> None:
        data = event.data.get("data") if isinstance(event.data, dict) else event.data
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False) + "\n"
        if text:
            self.out.write(text)
            self.out.flush()
            self.open_line = not text.endswith("\n")

    def end(self) -> None:
        if self.open_line:
            self.out.write("\n")
            self.open_line = False


def follow_output(updates: Iterator[Task | Event], task_id: str) -> Task:
    """:func:`follow`, with the chunks of a streamed answer written to stdout as they
    come (status lines on stderr then, not a bar, which would break the text)."""
    first = next(updates)
    assert isinstance(first, Task), "following starts with the task"
    chunks = ChunkWriter()

    def tasks() -> Iterator[Task]:
        yield first
        for update in updates:
            if isinstance(update, Task):
                yield update
            else:
                chunks.write(update)

    try:
        return follow(tasks(), task_id, bar=not first.raw.get("stream"))
    finally:
        chunks.end()


def follow_job(updates: Iterator[Job], job_id: str) -> Job:
    """:func:`follow` for a job: its bar is the share of its tasks that finished."""
    return _follow(updates, f"job {short(job_id)}", job_label, lambda job: job.progress, True)


def _follow(
    updates: Iterator[Shown],
    name: str,
    describe: Callable[[Shown], str],
    percent: Callable[[Shown], int],
    bar: bool,
) -> Shown:
    err = console(sys.stderr)
    last: Shown | None = None
    if not (bar and err.is_terminal):
        for last in updates:
            click.echo(f"{name}: {describe(last)}", err=True)
    else:
        columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err) as bar:
            line = bar.add_task(name, total=100)
            for last in updates:
                bar.update(line, completed=percent(last), description=f"{name} {last.status}")
    assert last is not None, "watching yields at least the current state"
    return last
