"""``taskfleet jobs submit|ls|show|tasks|cancel``: many tasks in one request."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

import click
from taskfleet_client import Client, Job, WaitTimeout

from app.remote_cli import render
from app.remote_cli.connection import Failure, api_command

#: The fields of a job body (``POST /api/jobs``).
JOB_FIELDS = frozenset({"name", "tasks", "template", "items"})


def _json_lines(text: str, source: str) -> list[Any]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                found.append(json.loads(line))
            except ValueError as exc:
                raise click.BadParameter(f"{source} line {number} is not JSON: {exc}") from exc
    return found


def read_job(file: TextIO) -> dict[str, Any]:
    """The job body in ``file``: a JSON object with ``tasks`` (or ``template`` and
    ``items``), a JSON list of task bodies, or JSON Lines, one task body a line."""
    source = "stdin" if file is sys.stdin or file.name == "<stdin>" else file.name
    text = file.read()
    try:
        whole = json.loads(text)
    except ValueError:
        whole = _json_lines(text, source)
    if isinstance(whole, dict) and JOB_FIELDS & whole.keys():
        body = whole
    else:  # task bodies: a list, JSON Lines, or the one line of JSON Lines
        body = {"tasks": whole if isinstance(whole, list) else [whole]}
    unknown = sorted(body.keys() - JOB_FIELDS)
    if unknown:
        fields = ", ".join(sorted(JOB_FIELDS))
        raise click.BadParameter(f"{source}: unknown field(s) {', '.join(unknown)} (a job has {fields})")
    tasks = body.get("tasks")
    if tasks is not None and not (isinstance(tasks, list) and all(isinstance(t, dict) for t in tasks)):
        raise click.BadParameter(f"{source}: tasks must be task bodies, JSON objects")
    if not tasks and "template" not in body:
        raise click.BadParameter(f"{source} holds no task")
    if not isinstance(body.get("template", {}), dict) or not isinstance(body.get("items", []), list):
        raise click.BadParameter(f"{source}: template must be an object and items a list")
    return body


def wait_for_job(client: Client, job_id: str, timeout_s: float | None) -> None:
    """Follow the job until it no longer runs; fail unless it COMPLETED."""
    try:
        job = render.follow_job(client.watch_job(job_id, timeout_s), job_id)
    except WaitTimeout as exc:
        raise Failure(f"{exc}; it goes on (taskfleet jobs show {job_id})") from exc
    except KeyboardInterrupt:
        click.echo(f"\nstopped waiting; job {job_id} goes on", err=True)
        sys.exit(130)
    if not job.ok:
        raise Failure(f"job {job_id} ended {job.status}: {render.counts(job)}")


@click.group()
def jobs() -> None:
    """Submit many tasks at once; follow, list and cancel them together."""


@jobs.command("submit")
@click.argument("file", type=click.File("r"))
@click.option("--name", help="The job's name [the file's name field].")
@click.option("--idempotency-key", help="The same key again returns the first job.")
@click.option("--wait", is_flag=True, help="Show its progress until done; exit 1 unless it COMPLETED.")
@click.option("--wait-timeout", type=float, help="With --wait: give up after this many seconds.")
@api_command
def submit(
    client: Client,
    file: TextIO,
    name: str | None,
    idempotency_key: str | None,
    wait: bool,
    wait_timeout: float | None,
) -> None:
    """Submit the job in FILE (- for stdin); print its id.

    FILE is a job body, {"name": ..., "tasks": [...]} or {"template": {...}, "items":
    [...]}, or JSON Lines, one task body (what POST /api/task takes, plus "key") a line.
    """
    body = read_job(file)
    try:
        job = client.submit_job(
            body.get("tasks"),
            template=body.get("template"),
            items=body.get("items"),
            name=name or body.get("name"),
            idempotency_key=idempotency_key,
        )
    except ValueError as exc:  # tasks and template both, or template without items
        raise click.BadParameter(str(exc), param_hint="FILE") from exc
    click.echo(job.id)
    if wait:
        click.echo(f"job {job.id} submitted: {job.total:,} tasks", err=True)
        wait_for_job(client, job.id, wait_timeout)


@jobs.command("ls")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True, help="Jobs per page.")
@click.option("--all", "every", is_flag=True, help="Every page, not only the first.")
@click.option("--json", "as_json", is_flag=True, help="The jobs as a JSON list.")
@api_command
def list_jobs(client: Client, limit: int, every: bool, as_json: bool) -> None:
    """Your jobs (all, for an admin), newest first."""
    found: list[Job]
    if every:
        found, more = list(client.iter_jobs(page_size=limit)), None
    else:
        page = client.jobs(limit)
        found, more = page.jobs, page.next_cursor
    if as_json:
        render.print_json([job.raw for job in found])
    else:
        render.console().print(render.jobs_table(found))
    if more:
        click.echo("(more: --all, or --limit up to 100)", err=True)


@jobs.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="The job as JSON, with its task ids.")
@api_command
def show(client: Client, job_id: str, as_json: bool) -> None:
    """The job's status, progress and tasks by status."""
    job = client.job(job_id)
    if as_json:
        render.print_json(job.raw)
    else:
        click.echo("\n".join(render.job_summary(job)))


@jobs.command("tasks")
@click.argument("job_id")
@click.option("--status", type=click.Choice(render.STATUSES))
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="Tasks per page.")
@click.option("--all", "every", is_flag=True, help="Every page, not only the first.")
@click.option("--json", "as_json", is_flag=True, help="The tasks as a JSON list.")
@api_command
def job_tasks(
    client: Client, job_id: str, status: str | None, limit: int, every: bool, as_json: bool
) -> None:
    """The job's tasks, in item order."""
    if every:
        found, more = list(client.iter_job_tasks(job_id, status, page_size=limit)), None
    else:
        page = client.job_tasks(job_id, status, limit)
        found, more = page.tasks, page.next_cursor
    if as_json:
        render.print_json([task.raw for task in found])
    else:
        render.console().print(render.tasks_table(found, keys=any(task.key for task in found)))
    if more:
        click.echo("(more: --all, or --limit up to 1000)", err=True)


@jobs.command("cancel")
@click.argument("job_id")
@api_command
def cancel(client: Client, job_id: str) -> None:
    """Cancel every unfinished task of the job."""
    job = client.cancel_job(job_id)
    click.echo(f"{job.id} {job.status} ({render.counts(job)})")
