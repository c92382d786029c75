"""Where a dispatch's CPU goes: cProfile and exact round-trip counts of taskfleet's own
dispatch code, run in this process, one task at a time, on a real stack.

  .venv/bin/python -m bench.profile_dispatch [--tasks 500]

Starts the benchmark stack (bench/stack.py) without its Celery worker, submits the
tasks through the API (their dispatch jobs wait in the queue, untouched), then calls
``app.services.dispatch.dispatch`` for each of them here, as the worker would (no
gevent: sequential calls against the fast backend). Printed per task: CPU
milliseconds, Redis round trips (commands and pipelines) by caller, SQL statements,
transactions, pool checkouts and new database connections; then the functions with
the most cumulative time. The same for ``submit`` (the API's part) is measured by
calling ``app.services.submit.submit`` here too, and for a whole ``POST /api/task``
through the Flask app's test client (JWT, validation, submit, the JSON answer).
Writes bench/results/profile-dispatch.txt.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import event

from app.core.task import TaskSpec
from app.services import submit as submit_service
from app.services.dispatch import dispatch
from bench.common import RESULTS_DIR, ApiClient, log, register_server
from bench.run import backends, interrupt_on_signals
from bench.stack import BenchStack, remove_tree


class Counting:
    """Counts Redis round trips (by the app function that made them) and SQL work."""

    def __init__(self) -> None:
        self.redis: Counter[str] = Counter()
        self.sql: Counter[str] = Counter()
        self.originals: list[tuple[Any, str, Any]] = []
        self.active = False

    def caller(self) -> str:
        for frame in reversed(traceback.extract_stack(limit=25)[:-2]):
            if "/app/" in frame.filename:
                return f"{Path(frame.filename).stem}.{frame.name}"
        return "?"

    def install(self, engines: list[Any]) -> None:
        counting = self

        def patch(owner: Any, name: str, label: str) -> None:
            original = getattr(owner, name)

            def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                if counting.active:
                    counting.redis[f"{label} from {counting.caller()}"] += 1
                return original(self, *args, **kwargs)

            setattr(owner, name, wrapper)
            self.originals.append((owner, name, original))

        patch(redis.Redis, "execute_command", "command")
        patch(redis.client.Pipeline, "execute", "pipeline")
        for engine in engines:
            self.listen(engine)

    def listen(self, engine: Any) -> None:
        @event.listens_for(engine, "before_cursor_execute")
        def statement(conn: Any, cursor: Any, sql: str, *_: Any) -> None:
            if not self.active:
                return
            self.sql["statements"] += 1
            self.sql[f"  {sql.split()[0].upper()} {_table(sql)}"] += 1

        @event.listens_for(engine, "commit")
        def commit(_conn: Any) -> None:
            if self.active:
                self.sql["commits"] += 1

        @event.listens_for(engine.pool, "checkout")
        def checkout(*_: Any) -> None:
            if self.active:
                self.sql["pool checkouts"] += 1

        @event.listens_for(engine.pool, "connect")
        def connect(*_: Any) -> None:
            if self.active:
                self.sql["new connections"] += 1

    def uninstall(self) -> None:
        for owner, name, original in self.originals:
            setattr(owner, name, original)

    def reset(self) -> None:
        self.redis.clear()
        self.sql.clear()


def _table(sql: str) -> str:
    words = sql.replace("\n", " ").split()
    for key in ("INTO", "UPDATE", "FROM"):
        if key in (w.upper() for w in words):
            i = [w.upper() for w in words].index(key)
            if i + 1 < len(words):
                return words[i + 1].strip('"')
    return ""


def report(
    title: str, n: int, cpu_s: float, counting: Counting, profile: cProfile.Profile, out: io.StringIO
) -> None:
    out.write(f"\n== {title}: {n} tasks, {cpu_s / n * 1000:.2f} ms CPU per task (this process)\n")
    total = sum(counting.redis.values())
    out.write(f"Redis round trips per task: {total / n:.1f}\n")
    for key, value in counting.redis.most_common(25):
        out.write(f"  {value / n:6.2f}  {key}\n")
    out.write("SQL per task:\n")
    for key, value in sorted(counting.sql.items(), key=lambda kv: (not kv[0].startswith(" "), -kv[1])):
        out.write(f"  {value / n:6.2f}  {key.strip() if not key.startswith('  ') else key}\n")
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("cumulative").print_stats(45)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_dispatch", description=__doc__.split("\n")[0])
    p.add_argument("--tasks", type=int, default=500)
    args = p.parse_args(argv)
    interrupt_on_signals()
    workdir = Path(tempfile.mkdtemp(prefix="taskfleet-profile-"))
    out = io.StringIO()
    try:
        with BenchStack(workdir, backends()) as stack:
            fast = stack.backends("fast")[0]
            register_server(stack, fast)
            stack.stop_workers()
            client = ApiClient(stack, "profile", ["client"])
            body = {"type": "echo", "payload": {"i": 0}, "capabilities": ["fast"], "mode": "sync"}
            n = args.tasks
            log(f"submitting {3 * n + 20} tasks through the API (no worker runs) ...")
            ids = client.submit_many([body] * (3 * n + 20), 4)
            from app import create_app
            from app.extensions import CONTEXT

            ctx = create_app(stack.settings()).extensions[CONTEXT]
            for task_id in ids[:20]:  # warm: connections, scripts, caches
                dispatch(ctx, task_id, 0)
            spec = TaskSpec(type="echo", payload={"i": 0}, capabilities=("fast",))
            for _ in range(20):
                submit_service.submit(ctx, "profile", spec)
            log("dispatching them here: timed, counted, then under cProfile ...")
            web = create_app(context=ctx).test_client()
            auth = {"Authorization": f"Bearer {client.token}"}

            def post_task(_i: int) -> None:
                answer = web.post("/api/task", json=body, headers=auth)
                assert answer.status_code == 201, answer.get_data(as_text=True)

            def get_task(i: int) -> None:
                answer = web.get(f"/api/task/{ids[20 + i]}", headers=auth)
                assert answer.status_code == 200, answer.get_data(as_text=True)

            for _ in range(20):
                post_task(0)
                get_task(0)
            passes = {
                "dispatch (app.services.dispatch.dispatch)": lambda i: dispatch(ctx, ids[20 + i], 0).value,
                "submit (app.services.submit.submit, no HTTP)": lambda i: submit_service.submit(
                    ctx, "profile", spec
                ),
                "POST /api/task (the Flask app in this process: no gunicorn, no socket)": post_task,
                "GET /api/task/<id> of a finished task (the same way)": get_task,
            }
            counting = Counting()
            counting.install(ctx.db.engines)
            for title, call in passes.items():
                cpu0 = time.process_time()
                for i in range(n):
                    call(i if not title.startswith(("submit", "POST")) else 0)
                cpu = time.process_time() - cpu0
                counting.reset()
                counting.active = True
                for i in range(n, 2 * n):
                    call(i if not title.startswith(("submit", "POST")) else 0)
                counting.active = False
                profile = cProfile.Profile()
                profile.enable()
                for i in range(2 * n, 3 * n):
                    call(i if not title.startswith(("submit", "POST")) else 0)
                profile.disable()
                report(title, n, cpu, counting, profile, out)
            counting.uninstall()
    except KeyboardInterrupt:
        log("interrupted; every process started was stopped")
        return 130
    finally:
        remove_tree(workdir)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / "profile-dispatch.txt"
    path.write_text(out.getvalue())
    print(out.getvalue())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
