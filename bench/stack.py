"""The benchmark's own stack on loopback: Postgres, Redis, the Procfile's release, web,
worker and beat, the benchmark backends and the bare-Celery baseline worker.

Everything is started by ``BenchStack.start`` and stopped by ``BenchStack.stop``
(also after a failure or Ctrl-C: callers use it as a context manager). Processes run
in their own sessions through ``app.devstack.Supervisor``; Postgres through
``tests.servers.PostgresServer`` (as the ``postgres`` user when run as root). A part
that cannot start fails loudly with the tail of its log.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg2
import redis
import requests

from app.cli import mint_token
from app.config import Settings
from app.devstack import Supervisor, free_port, read_procfile, redis_server_binary, wait_for_port
from tests.servers import PostgresServer, create_database, pg_binary

ROOT = Path(__file__).resolve().parent.parent
#: Database numbers on the one Redis server: taskfleet's, and the bare-Celery baseline's.
TASKFLEET_DB, BARE_DB = 0, 1
#: The Postgres role of the benchmark's own connections (progress polls, counters), so
#: ``pg_stat_statements`` tells its statements from the stack's (bench/costs.py).
OBSERVER_ROLE = "bench_observer"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Backend:
    """One listener of a ``bench.fast_backend`` process, registered as one server."""

    name: str
    port: int
    delay_s: float
    capability: str
    max_concurrent: int
    #: What the listener speaks: sync (one task per call), batch or poll.
    kind: str = "sync"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


#: Processes of the bare Celery baseline's prefork pool (and, by default, taskfleet's
#: worker processes in the benchmark: the same number of each).
BARE_CONCURRENCY = 2
#: Per-client limits far above anything the benchmark sends (the environment may override).
BENCH_CLIENT_LIMITS = {
    "CLIENT_SUBMITS_PER_S": "1000000",
    "CLIENT_BURST": "10000000",
    "CLIENT_MAX_UNFINISHED": "100000000",
}
#: Part 5 bulk-loads a year of finished tasks and reads them back: retention would
#: delete all but the last 30 days' while it runs (the environment may override).
BENCH_RETENTION = {"RETENTION_DAYS": "0"}


class BenchStack:
    """Start with ``with BenchStack(workdir, backends) as stack:``; every process it
    started is stopped when the block ends, however it ends."""

    def __init__(
        self,
        workdir: Path,
        backends: dict[str, list[Backend]],
        env: dict[str, str] | None = None,
        bare_concurrency: int = BARE_CONCURRENCY,
        worker_processes: int = 1,
    ) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.backend_groups = backends
        self.bare_concurrency = bare_concurrency
        self.worker_processes = worker_processes
        self.extra_env = env or {}
        self.port = free_port()
        self.redis_port = free_port()
        self.postgres: PostgresServer | None = None
        self.supervisor: Supervisor | None = None
        self.env: dict[str, str] = {}
        self.procfile = read_procfile(ROOT / "Procfile")
        self.database_url = ""
        self.stopped_on_purpose: set[str] = set()
        #: Whether the Postgres started here loaded pg_stat_statements.
        self.statements_tracked = False
        #: CPU seconds of the Postgres backends that served the benchmark's own
        #: connections: those closed so far, and the backend pid of each open one.
        self.observer_closed_cpu = 0.0
        self.observer_backends: dict[int, int] = {}

    # -- urls and clients -----------------------------------------------------------

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/{TASKFLEET_DB}"

    @property
    def bare_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/{BARE_DB}"

    @property
    def dsn(self) -> str:
        """The database for psycopg2 (the benchmark reads and bulk-loads directly)."""
        return self.database_url.replace("postgresql+psycopg2://", "postgresql://")

    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    def token(self, subject: str, roles: list[str]) -> str:
        return mint_token(self.settings(), subject, roles, 6 * 3600)

    def session(self, subject: str, roles: list[str]) -> requests.Session:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {self.token(subject, roles)}"
        return s

    def redis(self, db: int = TASKFLEET_DB) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.redis_port, db=db, decode_responses=True)

    def connect_db(self) -> Any:
        """A connection of the benchmark's own (autocommit), as ``OBSERVER_ROLE``: its
        statements are not counted as the stack's, nor its backend's CPU as Postgres'."""
        conn = psycopg2.connect(self.dsn, user=OBSERVER_ROLE, connection_factory=ObservedConnection)
        conn.stack = self
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            self.observer_backends[id(conn)] = int(cur.fetchone()[0])
        return conn

    @contextmanager
    def observer_db(self) -> Iterator[Any]:
        conn = self.connect_db()
        try:
            yield conn
        finally:
            conn.close()

    def observer_cpu_seconds(self) -> float:
        """CPU so far of the Postgres backends of the benchmark's own connections."""
        return self.observer_closed_cpu + sum(_process_cpu(pid) for pid in self.observer_backends.values())

    # -- starting and stopping ------------------------------------------------------

    def __enter__(self) -> BenchStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log("starting Postgres ...")
        self.postgres = PostgresServer()
        self.statements_tracked = track_statements(self.postgres)
        self.postgres.start()
        self.database_url = create_database(self.postgres.url, "taskfleet")
        self.add_observer()
        self.env = {
            # Part 7 sends 100,000+ tasks as one client at thousands a second, past the
            # per-client defaults: measure the submit path, checks included, not the limit.
            **BENCH_CLIENT_LIMITS,
            **BENCH_RETENTION,
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "JWT_SECRET_KEY": "bench-" + os.urandom(24).hex(),
            "PORT": str(self.port),
            "TASKFLEET_HOME": str(self.workdir),
            "BENCH_CELERY_URL": self.bare_url,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            **self.extra_env,
        }
        self.supervisor = Supervisor(env=self.env, cwd=ROOT, log_dir=self.logs)
        log("starting Redis, migrating, starting web, worker, beat, backends, bare Celery ...")
        redis_proc = self.supervisor.start(
            "redis",
            f"{redis_server_binary()} --port {self.redis_port} --bind 127.0.0.1 --save '' "
            f"--appendonly no --dir {self.workdir}",
            service=True,
        )
        self._wait("redis", self.redis_port, redis_proc)
        self.supervisor.run("release", self.procfile["release"] + f" >> {self.logs}/release.log 2>&1")
        web = self.supervisor.start("web", self.procfile["web"])
        self.start_worker()
        self.supervisor.start("beat", self.procfile["beat"])  # its schedule file goes to TASKFLEET_HOME
        for group, backends in self.backend_groups.items():
            listen = " ".join(f"--listen {b.name}:{b.port}:{b.delay_s}:{b.kind}" for b in backends)
            proc = self.supervisor.start(
                f"backend-{group}", f"{sys.executable} -m bench.fast_backend {listen}"
            )
            for b in backends:
                self._wait(f"backend-{group}", b.port, proc)
        self.supervisor.start(
            "bare-celery",
            f"celery -A bench.bare_celery worker --pool prefork --concurrency {self.bare_concurrency} "
            f"--queues bare --loglevel WARNING --hostname bare@%h",
        )
        self._wait("web", self.port, web, timeout_s=60)
        self.wait_ready()

    def add_observer(self) -> None:
        """The benchmark's own role, and pg_stat_statements' view in the database."""
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE ROLE {OBSERVER_ROLE} LOGIN SUPERUSER")
            if self.statements_tracked:
                cur.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.close()

    def worker_names(self) -> list[str]:
        return ["worker"] + [f"worker-{i}" for i in range(2, self.worker_processes + 1)]

    def start_worker(self) -> None:
        """The Procfile's worker command (once, as shipped, unless asked for more)."""
        assert self.supervisor is not None
        for i, name in enumerate(self.worker_names(), 1):
            self.stopped_on_purpose.discard(name)
            self.supervisor.start(name, self.procfile["worker"] + f" --hostname bench{i}@%h")

    def set_worker_processes(self, count: int, timeout_s: float = 60.0) -> None:
        """Run ``count`` worker processes: start the missing ones or stop the extra
        ones (the others keep running), then wait until ``count`` answer a ping."""
        assert self.supervisor is not None
        before = self.worker_names()
        self.worker_processes = count
        wanted = self.worker_names()
        for name in before:
            if name not in wanted:
                self.stop_process(name)
        running = {name for name, proc in self.supervisor.processes if proc.poll() is None}
        for i, name in enumerate(wanted, 1):
            if name not in running:
                self.stopped_on_purpose.discard(name)
                self.supervisor.start(name, self.procfile["worker"] + f" --hostname bench{i}@%h")
        self.wait_workers(time.monotonic() + timeout_s, count)

    def stop_workers(self) -> None:
        for name in self.worker_names():
            self.stop_process(name)

    def stop_process(self, name: str, grace_s: float = 20.0) -> None:
        """SIGTERM one process (its whole session) and wait; SIGKILL after ``grace_s``."""
        assert self.supervisor is not None
        for proc_name, proc in list(self.supervisor.processes):
            if proc_name != name:
                continue
            self.stopped_on_purpose.add(name)
            if proc.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(grace_s)
                except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
                    with suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            self.supervisor.processes.remove((proc_name, proc))

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """The API answers, the worker and the bare worker consume their queues, and
        reconcile has run once."""
        deadline = time.monotonic() + timeout_s
        admin = self.session("bench-admin", ["admin"])
        while True:
            self.check_alive()
            try:
                if admin.get(f"{self.api}/servers", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not answer in {timeout_s}s; see {self.logs}/web.log")
            time.sleep(0.3)
        self.wait_workers(deadline)
        # reconcile's first run (beat, every 10 s) takes a Redis without its "alive"
        # mark for one that lost its data and marks the hours since the last statistics
        # flush for a recount; no part starts before that, so none measures that.
        r = self.redis()
        while not r.exists("tf:alive"):
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"reconcile did not run; see {self.logs}/worker.log and beat.log")
            time.sleep(0.3)
        r.close()

    def wait_workers(self, deadline: float, processes: int = 1) -> None:
        """Both Celery workers answer a ping (so they consume their queues); taskfleet's
        with ``processes`` replies."""
        from app import create_app
        from app.extensions import CELERY
        from bench.bare_celery import app as bare_app

        tf = create_app(self.settings()).extensions[CELERY]
        bare_app.conf.broker_url = bare_app.conf.result_backend = self.bare_url
        for name, celery_app, replies in (("worker", tf, processes), ("bare-celery", bare_app, 1)):
            while len(celery_app.control.ping(timeout=1.0)) < replies:
                self.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not answer a ping; see {self.logs}/{name}.log")
        tf.close()

    def _wait(self, name: str, port: int, proc: Any, timeout_s: float = 30.0) -> None:
        try:
            wait_for_port(port, timeout_s, proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{name} did not start: {exc}\n{self.tail(name)}") from exc

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        try:
            return f"--- {path} (tail) ---\n" + path.read_text(errors="replace")[-chars:]
        except OSError:
            return f"(no log at {path})"

    def check_alive(self) -> None:
        """Raise if any process the benchmark started has exited on its own."""
        if self.supervisor is None:
            return
        dead = [n for n in self.supervisor.dead() if n not in self.stopped_on_purpose]
        if self.postgres is not None and self.postgres.process and self.postgres.process.poll() is not None:
            dead.append("postgres")
        if dead:
            tails = "\n".join(self.tail(n) for n in dead)
            raise RuntimeError(f"{', '.join(dead)} exited on its own\n{tails}")

    def stop(self) -> None:
        """Stop every process this stack started: the Procfile processes and backends
        first, then Redis, then Postgres (its data directory is removed)."""
        if self.supervisor is not None:
            self.supervisor.stop_all(grace_s=15.0)
            self.supervisor = None
        if self.postgres is not None:
            try:
                self.postgres.remove()
            finally:
                if self.postgres.process and self.postgres.process.poll() is None:
                    self.postgres.process.kill()
                self.postgres = None

    # -- CPU accounting -------------------------------------------------------------

    def roots(self) -> dict[str, int]:
        """Name -> pid of every process started (each one's children count with it)."""
        out: dict[str, int] = {}
        if self.supervisor is not None:
            for name, proc in self.supervisor.processes:
                if proc.poll() is None:
                    out[name] = proc.pid
        if self.postgres is not None and self.postgres.process and self.postgres.process.poll() is None:
            out["postgres"] = self.postgres.process.pid
        return out

    def cpu_seconds(self, names: Iterable[str] | None = None) -> dict[str, float]:
        """user+sys seconds so far of each started process and all its descendants,
        children that exited included (their time is in the parent's cutime/cstime).
        Postgres' leaves out the backends that served the benchmark's own connections
        (``observer_cpu_seconds``): their queries are not the stack's work."""
        wanted = set(names) if names is not None else None
        totals: dict[str, float] = {}
        for name, pid in self.roots().items():
            if wanted is not None and name not in wanted:
                continue
            total = 0.0
            try:
                root = psutil.Process(pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for p in procs:
                with suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    t = p.cpu_times()
                    total += t.user + t.system + t.children_user + t.children_system
            totals[name] = total
        if "postgres" in totals:
            totals["postgres"] = max(0.0, totals["postgres"] - self.observer_cpu_seconds())
        return totals

    def backends(self, group: str) -> list[Backend]:
        return self.backend_groups[group]


class ObservedConnection(psycopg2.extensions.connection):  # type: ignore[misc]
    """A psycopg2 connection that, when closed, adds its backend's CPU to its stack's
    ``observer_closed_cpu`` (a closed backend's CPU would otherwise stay in Postgres')."""

    stack: BenchStack | None = None

    def close(self) -> None:
        if self.stack is not None:
            pid = self.stack.observer_backends.pop(id(self), None)
            if pid is not None:
                self.stack.observer_closed_cpu += _process_cpu(pid)
        super().close()


def track_statements(server: PostgresServer) -> bool:
    """Make the (not yet started) server load pg_stat_statements, when its library is
    installed beside the server binary; whether it will."""
    postgres = pg_binary("postgres")
    if postgres is None or not (Path(postgres).parent.parent / "lib" / "pg_stat_statements.so").exists():
        log("pg_stat_statements is not installed: no Postgres statement counts")
        return False
    with (server.data / "postgresql.conf").open("a") as conf:
        conf.write(
            "\n# bench/stack.py: statement counts per task (bench/costs.py)\n"
            "shared_preload_libraries = 'pg_stat_statements'\n"
            "pg_stat_statements.max = 10000\n"
            "pg_stat_statements.track_utility = on\n"
        )
    return True


def _process_cpu(pid: int) -> float:
    """user+sys seconds of one process (0 once it is gone)."""
    try:
        t = psutil.Process(pid).cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    return t.user + t.system


def backend_stats(backend: Backend) -> dict[str, int]:
    return requests.get(f"{backend.url}/stats", timeout=5).json()


def reset_backend_stats(backend: Backend) -> None:
    requests.post(f"{backend.url}/reset", timeout=5)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
