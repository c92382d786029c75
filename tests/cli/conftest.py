"""One real stack for the CLI's tests, and ``taskfleet`` run as a subprocess the way CI
runs it: no terminal, no standard input, CI=true, a HOME of its own."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator

import pytest

from tests.client_fleet import Fleet, running_fleet
from tests.conftest import ROOT

TASKFLEET = str(ROOT / ".venv" / "bin" / "taskfleet")


@pytest.fixture(scope="package")
def fleet(tmp_path_factory, postgres_url, real_redis) -> Iterator[Fleet]:
    with running_fleet(tmp_path_factory.mktemp("cli-stack"), postgres_url, real_redis, "tf_cli") as found:
        yield found


@pytest.fixture
def taskfleet(fleet, tmp_path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """taskfleet(*args, token=admin, input=None, **env) -> the finished process; env
    values of None remove a variable."""
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TASKFLEET_") and key not in ("COLUMNS", "XDG_CONFIG_HOME")
    }
    base |= {"CI": "true", "HOME": str(tmp_path), "TERM": "dumb", "TASKFLEET_URL": fleet.url}

    def run(*args: str, token: str | None = fleet.admin, input: str | None = None, **env: str | None):
        merged = base | ({"TASKFLEET_TOKEN": token} if token else {}) | env
        return subprocess.run(
            [TASKFLEET, *args],
            env={key: value for key, value in merged.items() if value is not None},
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run
