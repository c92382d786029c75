"""The fault-injection stack: real Redis, real Postgres, the Procfile's processes (api,
gevent worker, beat) and real HTTP backends that count their own in-flight calls.

Each scenario gets a fresh stack, breaks something for real (kill -9, a Redis restart
or pause, Postgres stopped), and ends with ``FaultStack.check``: every invariant of
SPEC.md on what the database and Redis hold, and no slot drift on ``/metrics`` (the
slots Redis holds against the attempts the database has running). Figures go to the
terminal summary and to ``$TASKFLEET_FAULTS_REPORT`` (default
``bench/results/faults.json``).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from app.cli import mint_token
from app.config import Settings
from app.core.states import FINAL_STATUSES, is_allowed
from app.demo_backend import DemoBackend
from app.devstack import Supervisor, free_port, read_procfile, wait_for_port
from app.store.db import Database
from app.store.fleet import FleetStore
from app.store.models import TaskAttemptRow, TaskRow, TaskTransitionRow
from tests.conftest import JWT_SECRET, ROOT, make_settings
from tests.servers import PostgresServer, RedisServer, create_database

REPORT = Path(os.environ.get("TASKFLEET_FAULTS_REPORT", ROOT / "bench" / "results" / "faults.json"))
FIGURES: dict[str, dict[str, Any]] = {}
FINAL = {s.value for s in FINAL_STATUSES}


class FaultStack:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.redis = RedisServer()
        self.redis.start()
        self.postgres = PostgresServer()
        self.postgres.start()
        self.database_url = create_database(self.postgres.url, "taskfleet")
        self.port = free_port()
        self.env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis.url,
            "JWT_SECRET_KEY": JWT_SECRET,
            "PORT": str(self.port),
            "TASKFLEET_HOME": str(tmp_path),
            "WORKER_CONCURRENCY": "100",
            "WEB_CONCURRENCY": "2",
            # Stricter than the default minute: what Redis and the database disagree on
            # for more than 5 s shows in /metrics (the drift sampled during a run). A
            # slot is still freed no sooner than the reclaim job would.
            "SLOT_DRIFT_GRACE_S": "5",
            "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
        }
        self.procfile = read_procfile(ROOT / "Procfile")
        self.supervisor = Supervisor(env=self.env, cwd=ROOT, log_dir=tmp_path / "logs")
        self.api = f"http://127.0.0.1:{self.port}/api"
        self.client = requests.Session()
        self.client.headers["Authorization"] = (
            f"Bearer {mint_token(make_settings('sqlite://'), 'tester', ['client'], 3600)}"
        )
        self.admin = {
            "Authorization": f"Bearer {mint_token(make_settings('sqlite://'), 'ops', ['admin'], 3600)}"
        }
        self.backends: list[tuple[DemoBackend, int, int]] = []
        self._servers: list[Any] = []
        self.db = Database(self.database_url)
        self.workers = 0
        self.killed: set[str] = set()
        self.drift_grace_s = Settings.from_env(self.env).slot_drift_grace_s
        self._drift_seen: list[dict[str, float]] = []
        self._sampling = threading.Event()

    # -- processes ------------------------------------------------------------------

    def start(self, beats: int = 1) -> None:
        self.supervisor.run("release", self.procfile["release"])
        self.supervisor.start("web", self.procfile["web"])
        self.start_worker()
        for i in range(beats):
            command = self.procfile["beat"].replace("celerybeat-schedule", f"celerybeat-schedule-{i}")
            self.supervisor.start(f"beat-{i}", command)
        wait_for_port(self.port, 30)
        self._wait_healthy(60)
        self._sampling.set()
        threading.Thread(target=self._sample_drift, daemon=True).start()

    def _wait_healthy(self, within_s: float) -> None:
        """Until an API worker answers (gunicorn's master listens before its workers have
        imported the app, which takes a while on a loaded machine)."""
        deadline = time.monotonic() + within_s
        while True:
            try:
                if requests.get(f"{self.api}/health", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the API did not answer within {within_s}s")
            time.sleep(0.5)

    def start_worker(self) -> str:
        self.workers += 1
        name = f"worker-{self.workers}"
        self.supervisor.start(name, self.procfile["worker"] + f" --hostname {name}@%h")
        return name

    def kill(self, name: str) -> None:
        for proc_name, proc in self.supervisor.processes:
            if proc_name == name and proc.poll() is None:
                self.killed.add(name)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def stop(self) -> None:
        self._sampling.clear()
        self.supervisor.stop_all()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self.db.dispose()
        self.redis.stop()
        self.postgres.remove()

    # -- backends and tasks ---------------------------------------------------------

    def add_backend(
        self, name: str, capacity: int, delay_s: float = 0.2, fault: str | None = None, **fields: Any
    ) -> DemoBackend:
        """A demo backend registered as server ``name``; ``fields``: more registration
        fields (camelCase, as the API takes them)."""
        demo = DemoBackend(name, delay_s=delay_s, fault=fault)
        port = free_port()
        server = demo.serve("127.0.0.1", port)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        self._servers.append(server)
        self.backends.append((demo, port, capacity))
        body = {
            "id": name,
            "name": name,
            "maxConcurrent": capacity,
            "capabilities": ["echo"],
            "endpoints": {
                "predict": f"http://127.0.0.1:{port}/predict",
                "health": f"http://127.0.0.1:{port}/health",
                "status": f"http://127.0.0.1:{port}/status",
                "cancel": f"http://127.0.0.1:{port}/cancel",
            },
            **fields,
        }
        r = requests.post(f"{self.api}/servers", json=body, headers=self.admin, timeout=10)
        assert r.status_code == 201, r.text
        return demo

    def submit(self, n: int, payload=lambda i: {"i": i}, threads: int = 4, **fields: Any) -> list[str]:
        def one(i: int) -> str:
            body = {"type": "echo", "capabilities": ["echo"], "payload": payload(i), **fields}
            for _ in range(50):
                r = self.client.post(f"{self.api}/task", json=body, timeout=10)
                if r.status_code == 201:
                    return r.json()["id"]
                time.sleep(0.2)
            raise AssertionError(f"submission kept failing: {r.status_code} {r.text}")

        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, range(n)))

    def statuses(self, ids: list[str]) -> dict[str, str]:
        with self.db.session() as s:
            rows = s.execute(select(TaskRow.id, TaskRow.status).where(TaskRow.id.in_(ids))).all()
        return dict(rows)

    def wait_final(self, ids: list[str], timeout_s: float) -> float:
        """Seconds until every task is final in the database (AssertionError after timeout_s)."""
        start = time.monotonic()
        pending = set(ids)
        while pending:
            try:
                done = {t for t, st in self.statuses(list(pending)).items() if st in FINAL}
            except Exception:  # noqa: BLE001 - the database may be down on purpose
                done = set()
            pending -= done
            died = [n for n in self.supervisor.dead() if n not in self.killed]
            if pending and died:
                raise AssertionError(f"{died} exited on its own; see {self.tmp / 'logs'}")
            if pending and time.monotonic() - start > timeout_s:
                sample = self.statuses(list(pending)[:5])
                raise AssertionError(f"{len(pending)} tasks not final after {timeout_s}s, e.g. {sample}")
            time.sleep(0.5)
        return time.monotonic() - start

    # -- the invariants -------------------------------------------------------------

    def check(self, ids: list[str], max_retries: int = 3, idle_within_s: float = 15) -> dict[str, Any]:
        """Every SPEC invariant on what the stores hold; returns the scenario's figures."""
        with self.db.session() as s:
            tasks = {r.id: r for r in s.scalars(select(TaskRow).where(TaskRow.id.in_(ids)))}
            transitions: dict[str, list[TaskTransitionRow]] = {}
            for t in s.scalars(
                select(TaskTransitionRow)
                .where(TaskTransitionRow.task_id.in_(ids))
                .order_by(TaskTransitionRow.task_id, TaskTransitionRow.version)
            ):
                transitions.setdefault(t.task_id, []).append(t)
            first_started = dict(
                s.execute(
                    select(TaskAttemptRow.task_id, func.min(TaskAttemptRow.started_at))
                    .where(TaskAttemptRow.task_id.in_(ids))
                    .group_by(TaskAttemptRow.task_id)
                ).all()
            )
            upstream = {dep for row in tasks.values() for dep in row.depends_on or ()}
            ended = dict(
                s.execute(
                    select(TaskRow.id, TaskRow.finished_at).where(
                        TaskRow.id.in_(upstream), TaskRow.status == "COMPLETED"
                    )
                ).all()
            )
            attempts = dict(
                s.execute(
                    select(TaskAttemptRow.task_id, func.count())
                    .where(TaskAttemptRow.task_id.in_(ids), TaskAttemptRow.outcome != "BUSY")
                    .group_by(TaskAttemptRow.task_id)
                ).all()
            )
        assert set(tasks) == set(ids), "a task accepted with 201 is missing from the database"
        lost = [t for t, row in tasks.items() if row.status not in FINAL]
        assert not lost, f"{len(lost)} tasks never reached a final state"
        bad = []
        for task_id, rows in transitions.items():
            assert rows[0].to_status in _first_statuses(tasks[task_id]) and rows[0].from_status is None
            for row in rows[1:]:
                if row.from_status is not None and not is_allowed(row.from_status, row.to_status):
                    bad.append((task_id, row.from_status, row.to_status))
            completed = [r for r in rows if r.to_status == "COMPLETED"]
            assert len(completed) <= 1, f"task {task_id} completed twice"
        assert not bad, f"forbidden transitions recorded: {bad[:5]}"
        # Nothing ran early: not before its runAt, not before every dependency completed.
        early = [
            task_id
            for task_id, row in tasks.items()
            if task_id in first_started
            and (
                (row.run_at is not None and first_started[task_id] < row.run_at)
                or any(
                    ended.get(dep) is None or ended[dep] > first_started[task_id]
                    for dep in row.depends_on or ()
                )
            )
        ]
        assert not early, f"{len(early)} tasks started before their runAt or dependencies, e.g. {early[:5]}"
        for task_id, row in tasks.items():
            if row.status == "COMPLETED":
                assert row.result is not None, f"completed task {task_id} has no result"
            assert row.version >= transitions[task_id][-1].version, f"task {task_id}'s row went backwards"
        max_attempts = max(attempts.values(), default=0)
        assert max_attempts <= max_retries + 1, f"a task ran {max_attempts} attempts"
        over = [
            (d.name, d.stats()["max_in_flight"], cap)
            for d, _, cap in self.backends
            if d.stats()["max_in_flight"] > cap
        ]
        assert not over, f"a backend saw more calls at once than its maxConcurrent: {over}"
        client = redis_lib.Redis.from_url(self.redis.url, decode_responses=True)
        drift, young = self._wait_no_drift(client, idle_within_s + 10)
        assert drift is not None, "/metrics did not answer"
        missing = {d.name for d, _, _ in self.backends} - set(drift)
        assert not missing, f"/metrics has no taskfleet_slot_drift for {missing}"
        assert all(v == 0 for v in drift.values()) and not young, (
            f"slot drift left at the end: {drift}; leases not yet past the grace: {young[:5]}"
        )
        leases = self._wait_no_leases(client, idle_within_s)
        assert leases == [], f"reserved slots left when idle: {leases[:5]}"
        no_ttl = [k for k in client.scan_iter("*lock*") if client.ttl(k) == -1]
        assert not no_ttl, f"locks without a TTL: {no_ttl}"
        client.close()
        counts: dict[str, int] = {}
        for row in tasks.values():
            counts[row.status] = counts.get(row.status, 0) + 1
        return {
            "tasks": len(ids),
            "lost": 0,
            "over_capacity_events": 0,
            "max_attempts": max_attempts,
            "statuses": counts,
            "backend_max_in_flight": {d.name: d.stats()["max_in_flight"] for d, _, _ in self.backends},
            "drift": 0,
            **self._drift_figures(),
        }

    # -- the slot ledger ------------------------------------------------------------

    def slot_drift(self) -> dict[str, float] | None:
        """``taskfleet_slot_drift`` by server, as ``/metrics`` reports it (None: no answer)."""
        try:
            r = requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10)
        except requests.RequestException:
            return None
        if r.status_code != 200:
            return None
        return {
            sample.labels["server"]: sample.value
            for family in text_string_to_metric_families(r.text)
            if family.name == "taskfleet_slot_drift"
            for sample in family.samples
        }

    def _wait_no_drift(self, client: redis_lib.Redis, within_s: float) -> tuple[dict | None, list]:
        """Wait until /metrics reports drift 0 on every server at a moment when no lease
        is younger than the grace (so any lease left over counts as drift): a leftover
        must have been repaired. Returns (drift, leases still younger than the grace)."""
        fleet = FleetStore(client)
        deadline = time.monotonic() + within_s
        while True:
            drift = self.slot_drift()
            now_ms = time.time_ns() // 1_000_000
            young = [x for x in fleet.held_leases() if now_ms - x.reserved_ms < self.drift_grace_s * 1000]
            settled = drift is not None and not young and all(v == 0 for v in drift.values())
            if settled or time.monotonic() > deadline:
                return drift, young
            time.sleep(1)

    def _sample_drift(self) -> None:
        """Every few seconds while the stack runs: what /metrics says about drift."""
        while self._sampling.is_set():
            drift = self.slot_drift()
            if drift is not None:
                self._drift_seen.append(drift)
            time.sleep(3)

    def _drift_figures(self) -> dict[str, Any]:
        seen = list(self._drift_seen)
        worst = max((abs(v) for drift in seen for v in drift.values()), default=0)
        return {
            "drift_scrapes": len(seen),
            "drift_nonzero_scrapes": sum(1 for drift in seen if any(drift.values())),
            "drift_max_seen": worst,
        }

    def _wait_no_leases(self, client: redis_lib.Redis, within_s: float) -> list:
        fleet = FleetStore(client)
        deadline = time.monotonic() + within_s
        while (leases := fleet.all_leases()) and time.monotonic() < deadline:
            time.sleep(0.5)  # a release may still be on its way right after the last commit
        return leases


def _first_statuses(row: TaskRow) -> set[str]:
    """The statuses a task may be created in: PENDING, or SCHEDULED with a runAt, or
    WAITING with dependencies."""
    return (
        {"PENDING"}
        | ({"SCHEDULED"} if row.run_at is not None else set())
        | ({"WAITING"} if row.depends_on else set())
    )


@pytest.fixture
def stack(tmp_path):
    stack = FaultStack(tmp_path)
    try:
        yield stack
    finally:
        stack.stop()


def record(name: str, figures: dict[str, Any]) -> None:
    FIGURES[name] = figures


def pytest_terminal_summary(terminalreporter):  # type: ignore[no-untyped-def]
    if not FIGURES:
        return
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(FIGURES, indent=2, sort_keys=True))
    terminalreporter.section("fault scenarios")
    for name, figures in FIGURES.items():
        terminalreporter.write_line(f"{name}: {json.dumps(figures, sort_keys=True)}")
    terminalreporter.write_line(f"(written to {REPORT})")
