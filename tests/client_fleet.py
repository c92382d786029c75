"""A real stack with one demo backend registered, for the client's and the CLI's tests
(each package starts one and shares it between its tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from app.cli import mint_token
from app.demo_backend import DemoBackend
from tests.conftest import make_settings, serving_backend
from tests.servers import RedisServer
from tests.test_stack import running_stack


@dataclass(frozen=True)
class Fleet:
    #: The server's base URL, as TASKFLEET_URL takes it (no /api).
    url: str
    #: Bearer tokens: an admin, and two clients who see only their own tasks.
    admin: str
    alice: str
    bob: str
    backend: DemoBackend
    backend_port: int

    def endpoints(self) -> dict[str, str]:
        base = f"http://127.0.0.1:{self.backend_port}"
        return {"predict": f"{base}/predict", "health": f"{base}/health"}


def token(sub: str, *roles: str) -> str:
    return mint_token(make_settings("sqlite://"), sub, list(roles), 3600)


@contextmanager
def running_fleet(home: Path, postgres_url: str, redis: RedisServer, database_name: str) -> Iterator[Fleet]:
    """The Procfile's stack and a demo backend registered as ``echo-1`` (capability
    ``echo``, 4 slots, 0.3 s a call)."""
    with (
        running_stack(home, postgres_url, redis.url, flower=False, database_name=database_name) as started,
        serving_backend("fleet-backend", delay_s=0.3) as (demo, port),
    ):
        api = started[0]
        fleet = Fleet(
            url=api.removesuffix("/api"),
            admin=token("ops", "admin"),
            alice=token("alice", "client"),
            bob=token("bob", "client"),
            backend=demo,
            backend_port=port,
        )
        server = {"id": "echo-1", "name": "echo 1", "maxConcurrent": 4, "capabilities": ["echo"]}
        headers = {"Authorization": f"Bearer {fleet.admin}"}
        answer = requests.post(
            f"{api}/servers", json={**server, "endpoints": fleet.endpoints()}, headers=headers, timeout=10
        )
        answer.raise_for_status()
        yield fleet
