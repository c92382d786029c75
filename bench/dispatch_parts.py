"""Parts 1-3 of the benchmark: end-to-end throughput on a fast backend (against bare
Celery), throughput on slow backends (against the slot limit), and the latency
taskfleet adds to one task (against bare Celery's apply_async().get())."""

from __future__ import annotations

import bisect
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from app.store import keys
from app.store.waiting_lines import profile_id
from bench import bare_celery, costs
from bench.common import (
    ApiClient,
    PySpy,
    admin_call,
    ensure_registered,
    log,
    register_server,
    summary_ms,
    wait_until,
)
from bench.stack import BenchStack, backend_stats, reset_backend_stats

FINAL_OTHER = ("FAILED", "TIMEOUT", "CANCELLED")


def bare_app(stack: BenchStack) -> Any:
    app = bare_celery.app
    app.conf.broker_url = app.conf.result_backend = stack.bare_url
    return app


def bare_body(i: int) -> dict[str, Any]:
    """What taskfleet POSTs to predict, so the backend sees the same request."""
    return {
        "task_id": str(uuid.uuid4()),
        "request": {"type": "echo", "payload": {"i": i}, "async": False, "priority": 5},
        "callback_url": "",
    }


def task_body(i: int, capability: str) -> dict[str, Any]:
    return {"type": "echo", "payload": {"i": i}, "capabilities": [capability], "mode": "sync"}


def settle(stack: BenchStack, timeout_s: float = 300.0) -> float:
    """Wait until the dispatch queue is empty (jobs left over from the last part, e.g.
    the orphan sweep's duplicates, would delay the next); seconds waited."""
    r = stack.redis()
    start = time.monotonic()
    wait_until(lambda: r.llen("dispatch") == 0, timeout_s, "the dispatch queue to drain", stack, 0.2)
    r.close()
    time.sleep(1.0)
    return time.monotonic() - start


def log_count(stack: BenchStack, process: str, needle: str) -> int:
    """Lines of a process's log that contain ``needle``."""
    try:
        with (stack.logs / f"{process}.log").open(errors="replace") as f:
            return sum(1 for line in f if needle in line)
    except OSError:
        return 0


# -- part 1: end to end, fast backend ---------------------------------------------


def owner_progress(conn: Any, owner: str) -> tuple[int, int, float | None, float | None]:
    """(completed, failed otherwise, first start, last finish) of ``owner``'s tasks."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FILTER (WHERE status = 'COMPLETED'),"
            " count(*) FILTER (WHERE status IN %s),"
            " extract(epoch FROM min(started_at)), extract(epoch FROM max(finished_at))"
            " FROM tasks WHERE owner = %s",
            (FINAL_OTHER, owner),
        )
        done, bad, first, last = cur.fetchone()
    return (
        int(done),
        int(bad),
        (float(first) if first is not None else None),
        (float(last) if last is not None else None),
    )


def run_taskfleet(stack: BenchStack, n: int, threads: int, capability: str, tag: str) -> dict[str, Any]:
    """Submit ``n`` sync tasks through the API (``threads`` clients, one request each)
    and wait until the database holds all of them COMPLETED."""
    owner = f"{tag}-{uuid.uuid4().hex[:8]}"
    client = ApiClient(stack, owner, ["client"])
    conn = stack.connect_db()
    try:
        t0 = time.time()
        ids = client.submit_many((task_body(i, capability) for i in range(n)), threads)
        submitted = time.time()
        state: dict[str, Any] = {}

        def all_done() -> bool:
            done, bad, _first, last = owner_progress(conn, owner)
            if bad:
                raise RuntimeError(f"{bad} of {n} tasks ended FAILED/TIMEOUT/CANCELLED; see {stack.logs}")
            state["last"] = last
            return done >= n

        wait_until(all_done, max(180.0, n / 10), f"{n} tasks COMPLETED", stack)
        seen = time.time()
    finally:
        conn.close()
    end = state["last"] or seen
    return {
        "tasks": len(ids),
        "seconds": end - t0,
        "tasks_per_s": n / (end - t0),
        "submit_seconds": submitted - t0,
        "submit_per_s": n / (submitted - t0),
        "seen_seconds": seen - t0,
    }


def run_taskfleet_job(stack: BenchStack, n: int, capability: str, tag: str) -> dict[str, Any]:
    """The same ``n`` tasks as one job (``template`` + ``items``, one request), until
    the database holds all of them COMPLETED."""
    owner = f"{tag}-{uuid.uuid4().hex[:8]}"
    client = ApiClient(stack, owner, ["client"])
    template = {k: v for k, v in task_body(0, capability).items() if k != "payload"}
    body = json.dumps({"name": tag, "template": template, "items": [{"i": i} for i in range(n)]}).encode()
    conn = stack.connect_db()
    try:
        t0 = time.time()
        r = client.session().post(
            f"{stack.api}/jobs", data=body, headers={"Content-Type": "application/json"}, timeout=600
        )
        submitted = time.time()
        if r.status_code != 201:
            raise RuntimeError(f"POST /api/jobs: HTTP {r.status_code} {r.text[:300]}")
        state: dict[str, Any] = {}

        def all_done() -> bool:
            done, bad, _first, last = owner_progress(conn, owner)
            if bad:
                raise RuntimeError(f"{bad} of {n} job tasks ended FAILED/TIMEOUT/CANCELLED; see {stack.logs}")
            state["last"] = last
            return done >= n

        wait_until(all_done, max(180.0, n / 10), f"{n} job tasks COMPLETED", stack)
        seen = time.time()
    finally:
        conn.close()
    end = state["last"] or seen
    return {
        "tasks": n,
        "job_id": r.json()["id"],
        "seconds": end - t0,
        "tasks_per_s": n / (end - t0),
        "submit_seconds": submitted - t0,
        "submit_per_s": n / (submitted - t0),
        "seen_seconds": seen - t0,
    }


def run_bare(stack: BenchStack, n: int, threads: int, url: str) -> dict[str, Any]:
    """The same through bare Celery: ``apply_async`` from ``threads`` threads, then
    wait until the result backend holds every result (SUCCESS)."""
    app = bare_app(stack)
    backend = app.backend
    t0 = time.time()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda i: bare_celery.post.apply_async(args=[url, bare_body(i)]), range(n)))
    submitted = time.time()
    pending = {backend.get_key_for_task(r.id).decode(): r.id for r in results}
    client = stack.redis(db=1)
    last_done = 0.0
    deadline = time.monotonic() + max(180.0, n / 10)
    while pending:
        stack.check_alive()
        names = list(pending)
        for start in range(0, len(names), 1000):
            chunk = names[start : start + 1000]
            for key, raw in zip(chunk, client.mget(chunk), strict=True):
                if raw is None:
                    continue
                meta = json.loads(raw)
                if meta["status"] != "SUCCESS":
                    raise RuntimeError(f"bare Celery task failed: {meta.get('result')}")
                last_done = max(last_done, datetime.fromisoformat(meta["date_done"]).timestamp())
                del pending[key]
        if pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"bare Celery: {len(pending)} of {n} results missing")
            time.sleep(0.25)
    seen = time.time()
    client.close()
    end = last_done or seen
    return {
        "tasks": n,
        "seconds": end - t0,
        "tasks_per_s": n / (end - t0),
        "submit_seconds": submitted - t0,
        "submit_per_s": n / (submitted - t0),
        "seen_seconds": seen - t0,
    }


def part_e2e(stack: BenchStack, n: int, threads: int, warmup: int, py_spy: bool) -> dict[str, Any]:
    fast = stack.backends("fast")[0]
    register_server(stack, fast)
    url = f"{fast.url}/predict"
    log(f"part 1: warming up ({warmup} tasks each) ...")
    run_bare(stack, warmup, threads, url)
    run_taskfleet(stack, warmup, threads, fast.capability, "warm")
    run_taskfleet_job(stack, warmup, fast.capability, "warm-job")
    log(f"part 1: bare Celery, {n:,} tasks ...")
    c0 = costs.snapshot(stack)
    bare = run_bare(stack, n, threads, url)
    c1 = costs.snapshot(stack)
    log(f"  {bare['tasks_per_s']:.0f} tasks/s")
    settle(stack)
    log(f"part 1: taskfleet, {n:,} tasks through the API ...")
    stale0, requeued0 = log_count(stack, "worker", "'stale'"), _requeued(stack)
    profile_pids = {k: v for k, v in stack.roots().items() if k == "web" or k.startswith("worker")}
    c2 = costs.snapshot(stack)
    with PySpy(py_spy, "e2e", profile_pids) as spy:
        tf = run_taskfleet(stack, n, threads, fast.capability, "e2e")
    c3 = costs.snapshot(stack)
    log(f"  {tf['tasks_per_s']:.0f} tasks/s (API accepted {tf['submit_per_s']:.0f}/s)")
    bare["costs"] = costs.per_task(c0, c1, n)
    tf["costs"] = costs.per_task(c2, c3, n)
    bare["cpu_ms_per_task"] = bare["costs"]["cpu_ms"]
    tf["cpu_ms_per_task"] = tf["costs"]["cpu_ms"]
    tf["drain_after_s"] = round(settle(stack), 1)
    tf["stale_dispatch_jobs"] = log_count(stack, "worker", "'stale'") - stale0
    tf["orphan_sweep_requeued"] = _requeued(stack) - requeued0
    log(
        f"  queue drained {tf['drain_after_s']} s after the last completion;"
        f" {tf['stale_dispatch_jobs']} stale"
        f" dispatch jobs, {tf['orphan_sweep_requeued']} re-enqueued by the orphan sweep"
    )
    # The same n tasks as one job: after the queue drained (settle above), so the
    # counters hold this run alone.
    log(f"part 1: taskfleet, {n:,} tasks as one job (template + items) ...")
    c4 = costs.snapshot(stack)
    job = run_taskfleet_job(stack, n, fast.capability, "e2e-job")
    c5 = costs.snapshot(stack)
    log(f"  {job['tasks_per_s']:.0f} tasks/s (the job accepted in {job['submit_seconds'] * 1000:.0f} ms)")
    job["costs"] = costs.per_task(c4, c5, n)
    job["cpu_ms_per_task"] = job["costs"]["cpu_ms"]
    job["drain_after_s"] = round(settle(stack), 1)
    return {
        "tasks": n,
        "submit_threads": threads,
        "bare_celery": bare,
        "taskfleet": tf,
        "ratio": tf["tasks_per_s"] / bare["tasks_per_s"],
        "taskfleet_job": job,
        "job_ratio": job["tasks_per_s"] / bare["tasks_per_s"],
        "profile": spy.summaries,
    }


def _requeued(stack: BenchStack) -> int:
    """Dispatch jobs the orphan sweep (reconcile) enqueued so far, from the worker log."""
    total = 0
    try:
        with (stack.logs / "worker.log").open(errors="replace") as f:
            for line in f:
                if "reconcile: {" in line and "'requeued': " in line:
                    total += int(line.split("'requeued': ")[1].split(",")[0].split("}")[0])
    except OSError:
        pass
    return total


# -- part 2: slow backends against the slot limit ----------------------------------


def part_slow(stack: BenchStack, n: int, threads: int, py_spy: bool = False) -> dict[str, Any]:
    """Every slow server in maintenance, ``n`` tasks submitted (they wait in their
    line), then maintenance off for all: from then on the fleet's slots are the only
    limit. Rate = tasks / (last finish - first start), and the steady rate between the
    10th and 90th percentile of finishes."""
    settle(stack)
    slow = stack.backends("slow")
    slots = sum(b.max_concurrent for b in slow)
    delay = slow[0].delay_s
    limit = slots / delay
    for b in slow:
        register_server(stack, b)
        admin_call(stack, "PUT", f"/servers/{b.name}/maintenance", {"enabled": True})
        reset_backend_stats(b)
    owner = f"slow-{uuid.uuid4().hex[:8]}"
    client = ApiClient(stack, owner, ["client"])
    log(
        f"part 2: submitting {n:,} tasks for {len(slow)} servers in maintenance"
        f" ({slots} slots, {delay:g} s each) ..."
    )
    s0 = costs.snapshot(stack)
    client.submit_many((task_body(i, slow[0].capability) for i in range(n)), threads)
    line = keys.waiting_line(profile_id([slow[0].capability], None))
    r = stack.redis()
    wait_until(lambda: r.zcard(line) >= n, 300, f"{n} tasks waiting in their line", stack)
    r.close()
    s1 = costs.snapshot(stack)
    log("  all waiting; maintenance off ...")
    profile_pids = {k: v for k, v in stack.roots().items() if k.startswith("worker")}
    conn = stack.connect_db()
    try:
        with PySpy(py_spy, "slow", profile_pids):
            s2 = costs.snapshot(stack)
            released = time.time()
            cpu0, wall0 = stack.cpu_seconds(), time.monotonic()
            for b in slow:
                admin_call(stack, "PUT", f"/servers/{b.name}/maintenance", {"enabled": False})
            wait_until(
                lambda: owner_progress(conn, owner)[0] >= n,
                60 + n / (limit * 0.05),
                f"{n} slow tasks",
                stack,
                0.5,
            )
            s3 = costs.snapshot(stack)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT extract(epoch FROM finished_at) FROM tasks WHERE owner = %s ORDER BY finished_at",
                (owner,),
            )
            finishes = [float(row[0]) for row in cur.fetchall()]
        _, bad, first, last = owner_progress(conn, owner)
        turnover = slot_turnover(conn, owner, slots, delay)
    finally:
        conn.close()
    cpu1, wall = stack.cpu_seconds(), time.monotonic() - wall0
    busy = {name: round((cpu1[name] - cpu0.get(name, 0.0)) / wall * 100, 1) for name in cpu1}
    assert first is not None and last is not None
    lo, hi = int(n * 0.1), int(n * 0.9) - 1
    steady = (hi - lo) / (finishes[hi] - finishes[lo])
    per_server = {b.name: backend_stats(b) for b in slow}
    peak_total = max(s["process_max_in_flight"] for s in per_server.values())
    over = {name: s["max_in_flight"] for name, s in per_server.items() if s["max_in_flight"] > 20}
    overall = n / (last - first)
    log(
        f"  {overall:.1f} tasks/s overall, {steady:.1f} steady, limit {limit:.0f}/s,"
        f" peak in flight {peak_total}"
    )
    log(
        f"  slots busy {turnover['occupancy']:.0%} of the time; an attempt held its slot"
        f" {turnover['attempt_over_delay_ms_p50']:.0f} ms (p50) past the backend's {delay:g} s;"
        f" a freed slot started its next task after {turnover['restart_gap_ms_p50']:.0f} ms (p50),"
        f" {turnover['restart_gap_ms_p90']:.0f} ms (p90)"
    )
    return {
        "tasks": n,
        "servers": len(slow),
        "slots": slots,
        "backend_delay_s": delay,
        "slot_limit_per_s": limit,
        "first_start_after_release_s": first - released,
        "seconds": last - first,
        "tasks_per_s": overall,
        "ratio": overall / limit,
        "steady_tasks_per_s": steady,
        "steady_ratio": steady / limit,
        "peak_in_flight": peak_total,
        "max_in_flight_per_server": {name: s["max_in_flight"] for name, s in per_server.items()},
        "over_capacity": over,
        "cpu_percent_of_one_core": dict(sorted(busy.items(), key=lambda kv: -kv[1])),
        "slot_turnover": turnover,
        "failed": bad,
        # Per task: the submissions (servers in maintenance, until all wait in their
        # line), and the run (maintenance off to the last completion, read from the
        # database: up to one progress poll, 0.5 s, late).
        "costs_submit": costs.per_task(s0, s1, n),
        "costs_run": costs.per_task(s2, s3, n),
    }


def slot_turnover(conn: Any, owner: str, slots: int, delay_s: float) -> dict[str, float]:
    """Where part 2's slot time went, from the task records (one attempt each): the
    share of slot time between the first start and the last finish that attempts held
    (``occupancy``); how long an attempt ran past the backend's own ``delay_s`` (the
    call, the answer's write, the release); and, per server, the time from a finish to
    the next start there (``restart_gap``: the hand-off's latency while tasks wait)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT server_id, extract(epoch FROM started_at), extract(epoch FROM finished_at)"
            " FROM tasks WHERE owner = %s AND started_at IS NOT NULL AND finished_at IS NOT NULL",
            (owner,),
        )
        rows = [(server, float(start), float(end)) for server, start, end in cur.fetchall()]
    first, last = min(r[1] for r in rows), max(r[2] for r in rows)
    held = sorted(end - start for _, start, end in rows)
    gaps: list[float] = []
    by_server: dict[str, list[tuple[float, float]]] = {}
    for server, start, end in rows:
        by_server.setdefault(server, []).append((start, end))
    for runs in by_server.values():
        starts = sorted(start for start, _ in runs)
        for _, end in runs:
            later = bisect.bisect_left(starts, end)
            if later < len(starts):
                gaps.append(starts[later] - end)
    gaps.sort()

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(len(values) * q))] * 1000 if values else 0.0

    return {
        "occupancy": sum(held) / (slots * (last - first)),
        "attempt_over_delay_ms_p50": pct(held, 0.5) - delay_s * 1000,
        "attempt_over_delay_ms_p90": pct(held, 0.9) - delay_s * 1000,
        "restart_gap_ms_p50": pct(gaps, 0.5),
        "restart_gap_ms_p90": pct(gaps, 0.9),
    }


# -- part 3: added latency ----------------------------------------------------------


def part_latency(stack: BenchStack, samples: int, warmup: int) -> dict[str, Any]:
    """One task at a time. taskfleet: POST /api/task, then read its row every 0.5 ms
    until COMPLETED; bare Celery: apply_async().get(). Both minus the backend's own
    time (``own_us`` in its answer)."""
    fast = stack.backends("fast")[0]
    ensure_registered(stack, fast)  # by part 1 when it ran
    url = f"{fast.url}/predict"
    bare_app(stack)
    bare_ms: list[float] = []
    settle(stack)
    log(f"part 3: bare Celery apply_async().get(), {samples} sequential ...")
    b0 = costs.snapshot(stack)
    for i in range(warmup + samples):
        t0 = time.perf_counter()
        answer = bare_celery.post.apply_async(args=[url, bare_body(i)]).get(timeout=30)
        t1 = time.perf_counter()
        if i >= warmup:
            bare_ms.append((t1 - t0) * 1000 - answer["own_us"] / 1000)
    b1 = costs.snapshot(stack)
    settle(stack)
    log(f"part 3: taskfleet submit -> COMPLETED, {samples} sequential ...")
    client = ApiClient(stack, f"latency-{uuid.uuid4().hex[:8]}", ["client"])
    conn = stack.connect_db()
    tf_ms: list[float] = []
    accepted_ms: list[float] = []
    t0_costs = costs.snapshot(stack)
    try:
        with conn.cursor() as cur:
            for i in range(warmup + samples):
                t0 = time.perf_counter()
                task_id = client.submit(task_body(i, fast.capability))
                t_accepted = time.perf_counter()
                deadline = t0 + 30
                while True:
                    cur.execute("SELECT status, result FROM tasks WHERE id = %s", (task_id,))
                    status, result = cur.fetchone()
                    if status == "COMPLETED":
                        break
                    if status in FINAL_OTHER:
                        raise RuntimeError(f"latency task {task_id} ended {status}")
                    if time.perf_counter() > deadline:
                        stack.check_alive()
                        raise RuntimeError(f"latency task {task_id} not COMPLETED after 30 s ({status})")
                    time.sleep(0.0005)
                t1 = time.perf_counter()
                if i >= warmup:
                    tf_ms.append((t1 - t0) * 1000 - result["own_us"] / 1000)
                    accepted_ms.append((t_accepted - t0) * 1000)
    finally:
        conn.close()
    t1_costs = costs.snapshot(stack)
    bare_s, tf_s = summary_ms(bare_ms), summary_ms(tf_ms)
    log(
        f"  bare p50 {bare_s['p50_ms']:.1f} ms p99 {bare_s['p99_ms']:.1f};"
        f" taskfleet p50 {tf_s['p50_ms']:.1f} p99 {tf_s['p99_ms']:.1f}"
    )
    return {
        "samples": samples,
        "bare_celery": bare_s,
        "taskfleet": tf_s,
        "taskfleet_submit_answered": summary_ms(accepted_ms),
        "p50_ratio": tf_s["p50_ms"] / bare_s["p50_ms"],
        "p99_ratio": tf_s["p99_ms"] / bare_s["p99_ms"],
        # One task at a time: the idle stack's CPU over the run is in these too.
        "taskfleet_costs": costs.per_task(t0_costs, t1_costs, warmup + samples),
        "bare_celery_costs": costs.per_task(b0, b1, warmup + samples),
    }
