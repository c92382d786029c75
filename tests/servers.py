"""Real Redis and Postgres servers on loopback for the test suite."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.devstack import free_port, redis_server_binary, wait_for_port

PG_BIN_DIRS = (
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/local/bin",
    "/usr/bin",
)


def pg_binary(name: str) -> str | None:
    for directory in PG_BIN_DIRS:
        candidate = Path(directory) / name
        if candidate.exists():
            return str(candidate)
    return shutil.which(name)


class RedisServer:
    """A private redis-server without persistence; can be restarted (data lost)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="tf-redis-")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, process=self.process)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


def _as_postgres_user(argv: list[str]) -> list[str]:
    """Postgres refuses to run as root: drop to the 'postgres' user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


class PostgresServer:
    """initdb + postgres on a free port (trust auth on loopback); can be stopped and
    started again with its data."""

    def __init__(self) -> None:
        initdb, postgres = pg_binary("initdb"), pg_binary("postgres")
        if not initdb or not postgres:
            raise RuntimeError("PostgreSQL server binaries (initdb, postgres) not found")
        self.postgres = postgres
        self.root = Path(tempfile.mkdtemp(prefix="tf-pg-"))
        self.data, self.sockets = self.root / "data", self.root / "run"
        self.sockets.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.sockets, "postgres")
        argv = [initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]
        subprocess.run(
            _as_postgres_user(argv), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [
            self.postgres,
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-k",
            str(self.sockets),
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=300",
        ]
        self.process = subprocess.Popen(
            _as_postgres_user(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port, 30, self.process)
        time.sleep(0.3)

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, as when the server goes away."""
        if self.process and self.process.poll() is None:
            argv = [pg_binary("pg_ctl") or "pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w"]
            subprocess.run(
                _as_postgres_user(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60
            )
            self.process.wait(30)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[str]:
    """A Postgres server for the session; yields its URL without a database name."""
    server = PostgresServer()
    try:
        server.start()
        yield server.url
    finally:
        server.remove()


def create_database(server_url: str, name: str) -> str:
    """Create database ``name`` on the server and return its URL."""
    from sqlalchemy import create_engine, text

    engine = create_engine(f"{server_url}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"{server_url}/{name}"
