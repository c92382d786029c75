"""``taskfleet submit`` and ``taskfleet tasks ls|show|wait|cancel|retry``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from taskfleet_client import Client, Task, TaskfleetError, WaitTimeout, calls

from app.remote_cli import render
from app.remote_cli.connection import Failure, api_command

MODES = ["sync", "callback", "poll"]
STATUSES = render.STATUSES


def read_payload(value: str | None) -> Any:
    """``--payload``: JSON text, ``@file`` or ``@-`` (stdin)."""
    if value is None:
        return None
    source = "--payload"
    if value.startswith("@"):
        source = value[1:]
        try:
            value = sys.stdin.read() if source == "-" else Path(source).read_text()
        except OSError as exc:
            raise click.BadParameter(str(exc), param_hint="--payload") from exc
    try:
        return json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"{source} is not JSON: {exc}", param_hint="--payload") from exc


def check_run_at(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--run-at``: ISO 8601 with a timezone; a naive time is refused here, not guessed."""
    try:
        return None if value is None else calls.aware_time(value, "--run-at")
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def wait_and_print(client: Client, task_id: str, timeout_s: float | None) -> None:
    """Follow the task to its end (its event stream, or polling an older server), print
    the chunks of a streamed answer as they come and then its result JSON; fail unless
    it COMPLETED."""
    try:
        task = render.follow_output(client.follow(task_id, timeout_s), task_id)
    except WaitTimeout as exc:
        raise Failure(f"{exc}; it goes on (taskfleet tasks wait {task_id})") from exc
    except KeyboardInterrupt:
        click.echo(f"\nstopped waiting; task {task_id} goes on", err=True)
        sys.exit(130)
    if not task.ok:
        raise Failure(f"task {task_id} ended {task.status}: {task.error or 'no error given'}")
    render.print_json(task.result)


@click.command()
@click.argument("type")
@click.option("--payload", help="JSON, @file or @- (stdin).")
@click.option("--cap", "capabilities", multiple=True, help="A capability the server must have (repeatable).")
@click.option("--priority", type=click.IntRange(0, 10), help="0-10, larger first [5].")
@click.option("--mode", type=click.Choice(MODES), help="How the backend answers [sync].")
@click.option("--timeout", type=int, help="Seconds an attempt may run [3600].")
@click.option("--max-retries", type=int, help="Attempts after the first [3].")
@click.option("--region", help="Preferred region.")
@click.option("--group", help="Only servers in this group.")
@click.option(
    "--run-at",
    callback=check_run_at,
    metavar="TIME",
    help="Not before this ISO 8601 time with a timezone (2030-01-01T09:00:00Z); SCHEDULED until then.",
)
@click.option("--delay", type=click.FloatRange(0), help="Seconds before it starts; not with --run-at.")
@click.option(
    "--depends-on",
    "depends_on",
    multiple=True,
    metavar="TASK_ID",
    help="A task that must COMPLETE first (repeatable); WAITING until then.",
)
@click.option(
    "--stream",
    is_flag=True,
    default=None,
    help="Ask the backend to stream its output (with --wait: printed as it comes).",
)
@click.option("--idempotency-key", help="The same key again returns the first task.")
@click.option(
    "--wait", is_flag=True, help="Show its progress (and streamed output), then print the result JSON."
)
@click.option("--wait-timeout", type=float, help="With --wait: give up after this many seconds.")
@api_command
def submit(
    client: Client,
    type: str,
    payload: str | None,
    capabilities: tuple[str, ...],
    depends_on: tuple[str, ...],
    wait: bool,
    wait_timeout: float | None,
    **fields: Any,
) -> None:
    """Submit a task of TYPE; print its id (or, with --wait, its result)."""
    if depends_on:
        fields["depends_on"] = list(depends_on)
    task = client.submit(type, read_payload(payload), capabilities=list(capabilities), **fields)
    if not wait:
        click.echo(task.id)
        return
    click.echo(f"task {task.id} submitted", err=True)
    wait_and_print(client, task.id, wait_timeout)


@click.group()
def tasks() -> None:
    """List, show, follow, cancel and retry tasks."""


@tasks.command("ls")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--type", "type_", metavar="TYPE")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True, help="Tasks per page.")
@click.option("--all", "every", is_flag=True, help="Every page, not only the first.")
@click.option("--json", "as_json", is_flag=True, help="The tasks as a JSON list.")
@api_command
def list_tasks(
    client: Client, status: str | None, type_: str | None, limit: int, every: bool, as_json: bool
) -> None:
    """Your tasks (all, for an admin), newest first."""
    if every:
        found = list(client.iter_tasks(status, type_, page_size=limit))
        more = None
    else:
        page = client.list(status, type_, limit)
        found, more = page.tasks, page.next_cursor
    if as_json:
        render.print_json([task.raw for task in found])
    else:
        render.console().print(render.tasks_table(found))
    if more:
        click.echo("(more: --all, or --limit up to 100)", err=True)


@tasks.command("show")
@click.argument("task_id")
@api_command
def show(client: Client, task_id: str) -> None:
    """The task as JSON."""
    render.print_json(client.get(task_id).raw)


@tasks.command("attempts")
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Print the attempts as JSON.")
@api_command
def attempts(client: Client, task_id: str, as_json: bool) -> None:
    """The task's attempts: server, start and end, outcome, duration, error."""
    found = client.attempts(task_id)
    if as_json:
        render.print_json([a.raw for a in found])
    else:
        render.console().print(render.attempts_table(found))


@tasks.command("wait")
@click.argument("task_id")
@click.option("--timeout", "timeout_s", type=float, help="Give up after this many seconds.")
@api_command
def wait_for(client: Client, task_id: str, timeout_s: float | None) -> None:
    """Follow a task to its end (streamed output as it comes); print its result JSON."""
    wait_and_print(client, task_id, timeout_s)


@tasks.command("events")
@click.argument("task_id")
@click.option("--after", "last_event_id", metavar="EVENT_ID", help="Resume after this event id.")
@api_command
def events(client: Client, task_id: str, last_event_id: str | None) -> None:
    """The task's events as they happen, one JSON line each ({id, event, data}), until
    its result."""
    try:
        for event in client.events(task_id, last_event_id):
            line = {"id": event.id, "event": event.name, "data": event.data}
            click.echo(json.dumps(line, ensure_ascii=False, separators=(",", ":")))
    except KeyboardInterrupt:
        sys.exit(130)


def _each(ids: tuple[str, ...], action: Any) -> None:
    """Apply ``action`` to every id; report each, fail at the end if any failed."""
    failed = 0
    for task_id in ids:
        try:
            task: Task = action(task_id)
        except TaskfleetError as exc:
            failed += 1
            click.echo(f"error: {exc}", err=True)
            continue
        click.echo(f"{task.id} {task.status}")
    if failed:
        sys.exit(1)


@tasks.command("cancel")
@click.argument("task_ids", nargs=-1, required=True)
@api_command
def cancel(client: Client, task_ids: tuple[str, ...]) -> None:
    """Cancel unfinished tasks."""
    _each(task_ids, client.cancel)


@tasks.command("retry")
@click.argument("task_ids", nargs=-1, required=True)
@api_command
def retry(client: Client, task_ids: tuple[str, ...]) -> None:
    """Start FAILED or TIMEOUT tasks again."""
    _each(task_ids, client.retry)
