"""Where the CLI's API commands find the server and the token, and how they fail.

The URL and token come from ``--url``/``--token``, else ``TASKFLEET_URL`` /
``TASKFLEET_TOKEN``, else the config file (``$TASKFLEET_CONFIG``, or
``~/.config/taskfleet/config.toml``) with ``url = "..."`` and ``token = "..."``. Any
error of the API ends the command with ``error: <the API's message> (<status>)`` on
stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import functools
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from taskfleet_client import Client, TaskfleetError

#: Where ``taskfleet up`` serves the API.
DEFAULT_URL = "http://127.0.0.1:8000"

F = TypeVar("F", bound=Callable[..., Any])


class Failure(click.ClickException):
    """Ends a command with ``error: <message>`` on stderr and exit code 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def config_path(env: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    if env.get("TASKFLEET_CONFIG"):
        return Path(env["TASKFLEET_CONFIG"])
    base = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "taskfleet" / "config.toml"


def read_config(path: Path) -> dict[str, Any]:
    """The config file's settings; none when it does not exist."""
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise Failure(f"cannot read {path}: {exc}") from exc


@dataclass(frozen=True)
class Target:
    url: str
    token: str


def resolve(url: str | None, token: str | None) -> Target:
    """Flags and environment variables (click reads both) first, then the config file."""
    path = config_path()
    config = read_config(path) if url is None or token is None else {}
    token = token or config.get("token")
    if not token:
        raise Failure(f'no token: pass --token, set TASKFLEET_TOKEN, or put token = "..." in {path}')
    return Target(url or config.get("url") or DEFAULT_URL, str(token))


def api_command(function: F) -> F:
    """Give a command ``--url`` and ``--token``, pass it a connected ``Client`` as its
    first argument, and turn the client's errors into ``error: ...`` and exit 1."""

    @click.option("--url", envvar="TASKFLEET_URL", help="API base URL [TASKFLEET_URL, config file].")
    @click.option("--token", envvar="TASKFLEET_TOKEN", help="Bearer token [TASKFLEET_TOKEN, config file].")
    @functools.wraps(function)
    def command(url: str | None, token: str | None, **kwargs: Any) -> Any:
        target = resolve(url, token)
        try:
            client = Client(target.url, target.token)
        except ValueError as exc:  # a URL that is not http(s)
            raise Failure(str(exc)) from exc
        with client:
            try:
                return function(client, **kwargs)
            except TaskfleetError as exc:
                raise Failure(str(exc)) from exc

    return command  # type: ignore[return-value]
