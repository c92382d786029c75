"""The CLI's commands for daily work against a running API, through ``taskfleet_client``:
``submit``, ``tasks``, ``jobs``, ``servers``, ``limits``, ``stats`` and ``tokens``. They need only the
API's URL and a token (see ``connection``), never the server's settings."""

from __future__ import annotations

import click

from app.remote_cli.jobs import jobs
from app.remote_cli.limits import limits
from app.remote_cli.servers import servers
from app.remote_cli.stats import stats
from app.remote_cli.tasks import submit, tasks
from app.remote_cli.tokens import tokens


def register(group: click.Group) -> None:
    for command in (submit, tasks, jobs, servers, limits, stats, tokens):
        group.add_command(command)
