"""Part 9 of the benchmark: the same burst with 1 and with 2 worker processes, for the
capacity model (bench/README.md).

The fast backend's server (10,000 slots, part 1's) goes into maintenance, N tasks are
submitted as one job (``POST /api/jobs``, the quickest way in) and wait in their line,
then maintenance ends and every task is woken at once: tasks/s from the first start
to the last finish, and the per-task costs of that window (bench/costs.py: CPU of
each process, Postgres statements and WAL bytes, Redis commands). The submission
comes before the window, so it measures what the workers, Redis and Postgres spend
to run a task that is already accepted; part 1 gives the submission's cost.

The worker processes are changed in place (``BenchStack.set_worker_processes``): the
second one is stopped for the first run and started again for the second, which is
the benchmark's default; a small warm-up runs after each change.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import requests

from app.store import keys
from app.store.waiting_lines import profile_id
from bench import costs
from bench.common import ApiClient, admin_call, ensure_registered, log, wait_until
from bench.dispatch_parts import owner_progress, run_taskfleet, settle, task_body
from bench.stack import BenchStack

PROCESS_COUNTS = (1, 2)
#: Seconds of the idle stack measured first: its CPU rate, spread over a run's window,
#: is what a run's per-task CPU holds beside the tasks' own cost.
IDLE_S = 5.0


def submit_job(stack: BenchStack, client: ApiClient, backend: Any, n: int) -> None:
    """The ``n`` tasks as one job (the quickest way in: one request, lined up by it)."""
    template = {k: v for k, v in task_body(0, backend.capability).items() if k != "payload"}
    body = {"name": "workers-burst", "template": template, "items": [{"i": i} for i in range(n)]}
    r = client.session().post(f"{stack.api}/jobs", json=body, timeout=600)
    if r.status_code != 201:
        raise RuntimeError(f"POST /api/jobs: HTTP {r.status_code} {r.text[:300]}")


def set_maintenance(stack: BenchStack, server_id: str, enabled: bool) -> None:
    admin_call(stack, "PUT", f"/servers/{server_id}/maintenance", {"enabled": enabled})


def run_burst(stack: BenchStack, backend: Any, n: int) -> dict[str, Any]:
    settle(stack)
    owner = f"workers-{uuid.uuid4().hex[:8]}"
    client = ApiClient(stack, owner, ["client"])
    set_maintenance(stack, backend.name, True)
    released, conn = False, None
    try:
        submit_job(stack, client, backend, n)
        line = keys.waiting_line(profile_id([backend.capability], None))
        r = stack.redis()
        wait_until(lambda: r.zcard(line) >= n, 300, f"{n} tasks waiting in their line", stack)
        r.close()
        settle(stack)  # nothing left in the dispatch queue when the window opens
        conn = stack.connect_db()
        c0 = costs.snapshot(stack)
        set_maintenance(stack, backend.name, False)
        released = True
        wait_until(lambda: owner_progress(conn, owner)[0] >= n, max(180.0, n / 5), f"{n} tasks", stack, 0.25)
        c1 = costs.snapshot(stack)
        _done, bad, first, last = owner_progress(conn, owner)
    finally:
        if conn is not None:
            conn.close()
        if not released:  # the parts after this one use the server
            with_retry(lambda: set_maintenance(stack, backend.name, False))
    assert first is not None and last is not None
    window = costs.per_task(c0, c1, n)
    return {
        "tasks": n,
        "failed": bad,
        "seconds": last - first,
        "tasks_per_s": n / (last - first),
        "costs": window,
    }


def with_retry(call: Any) -> None:
    for _ in range(3):
        try:
            call()
            return
        except (requests.RequestException, RuntimeError):
            time.sleep(1.0)


def part_workers(stack: BenchStack, n: int, threads: int, warmup: int) -> dict[str, Any]:
    started = time.monotonic()
    fast = stack.backends("fast")[0]
    ensure_registered(stack, fast)
    original = stack.worker_processes
    runs: dict[str, Any] = {}
    settle(stack)
    idle0 = costs.snapshot(stack)
    time.sleep(IDLE_S)
    idle = costs.per_task(idle0, costs.snapshot(stack), 1)  # per second: "tasks" = 1
    idle_ms_per_s = idle["cpu_ms_stack"] / idle["seconds"]
    log(f"part 9: the idle stack uses {idle_ms_per_s / 10:.1f} % of a core")
    try:
        for count in PROCESS_COUNTS:
            settle(stack)
            log(f"part 9: {count} worker process(es) ...")
            stack.set_worker_processes(count)
            run_taskfleet(stack, warmup, threads, fast.capability, f"workers-warm-{count}")
            log(f"part 9: {count} worker process(es), {n:,} tasks woken at once ...")
            run = run_burst(stack, fast, n)
            c = run["costs"]
            worker_ms = sum(v for k, v in c["cpu_ms"].items() if k.startswith("worker"))
            run["worker_cpu_ms"] = round(worker_ms, 3)
            run["stack_cpu_ms_above_idle"] = round(c["cpu_ms_stack"] - idle_ms_per_s * c["seconds"] / n, 3)
            log(
                f"  {run['tasks_per_s']:.0f} tasks/s; CPU ms per task: stack {c['cpu_ms_stack']:.2f},"
                f" worker processes {worker_ms:.2f}"
            )
            runs[str(count)] = run
    finally:
        if stack.worker_processes != original:
            stack.set_worker_processes(original)
    one, two = runs["1"], runs["2"]
    return {
        "tasks": n,
        "runs": runs,
        "scaling": two["tasks_per_s"] / one["tasks_per_s"],
        "idle_stack_cpu_percent_of_one_core": round(idle_ms_per_s / 10, 2),
        "part_seconds": time.monotonic() - started,
    }


# -- the table (bench/run.py prints it) ------------------------------------------


def workers_rows(w: dict[str, Any]) -> list[tuple[str, ...]]:
    one, two = w["runs"]["1"], w["runs"]["2"]
    return [
        (
            "9",
            f"burst of {w['tasks']:,} woken tasks, 1 / 2 worker processes",
            f"{one['tasks_per_s']:.0f} / {two['tasks_per_s']:.0f} tasks/s",
            "1 process",
            f"{w['scaling']:.2f}x",
            "",
            "-",
        ),
        (
            "9",
            "  stack CPU ms per task (above idle), 1 / 2 processes",
            f"{one['costs']['cpu_ms_stack']:.2f} / {two['costs']['cpu_ms_stack']:.2f}",
            f"above idle {one['stack_cpu_ms_above_idle']:.2f} / {two['stack_cpu_ms_above_idle']:.2f}",
            "",
            "",
            "-",
        ),
        (
            "9",
            "  worker processes' CPU ms per task, 1 / 2 processes",
            f"{one['worker_cpu_ms']:.2f} / {two['worker_cpu_ms']:.2f}",
            "",
            "",
            "",
            "-",
        ),
    ]


def print_workers_notes(w: dict[str, Any]) -> None:
    print(
        f"part 9: {w['part_seconds']:.0f} s; the idle stack used"
        f" {w['idle_stack_cpu_percent_of_one_core']:.1f} % of a core;"
        " per-task costs of the burst (maintenance off to the last finish):"
    )
    cols = [(f"{k} worker process(es)", r["costs"]) for k, r in w["runs"].items()]
    for line in costs.cost_lines(cols):
        print("  " + line)
