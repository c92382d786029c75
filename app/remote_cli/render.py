"""How the CLI shows things: JSON, tables, a sparkline, a task's progress."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TextIO

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from taskfleet_client import Attempt, Server, Task

#: Eight heights, lowest first; an hour with nothing shows the lowest.
BLOCKS = "▁▂▃▄▅▆▇█"


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


def tasks_table(tasks: Iterable[Task]) -> Table:
    table = Table("ID", "TYPE", "STATUS", "PROGRESS", "SERVER", "CREATED (UTC)", box=None, pad_edge=False)
    table.columns[0].no_wrap = True
    for task in tasks:
        progress = f"{task.progress}%" if task.status == "PROCESSING" else ""
        table.add_row(task.id, task.type, task.status, progress, task.server_id or "", when(task.created_at))
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


def follow(updates: Iterator[Task], task_id: str) -> Task:
    """Show a task's updates on stderr until the last one, and return it: a live bar
    from its progress on a terminal, one line per change elsewhere (logs, CI)."""
    err = console(sys.stderr)
    last: Task | None = None
    if not err.is_terminal:
        for last in updates:
            click.echo(f"task {short(task_id)}: {label(last)}", err=True)
    else:
        columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err) as bar:
            line = bar.add_task(f"task {short(task_id)}", total=100)
            for last in updates:
                done = 100 if last.ok else last.progress
                bar.update(line, completed=done, description=f"task {short(task_id)} {last.status}")
    assert last is not None, "watch yields at least the task's current state"
    return last
