"""Part 7 of the benchmark: accepting tasks, through jobs against one request per task.

Tasks/s ACCEPTED (from the first request to the last 201), the same run, back to back:

- one ``POST /api/task`` per task from the usual client threads (8);
- ``POST /api/jobs`` with 10,000 tasks per job, one job at a time, in both shapes:
  ``template`` + ``items`` (fan-out) and a ``tasks`` list of whole task bodies;
- fan-out jobs from 3 threads at once (2 jobs each), so both web processes work.

The tasks ask for a capability no server has, so nothing is dispatched while
acceptance is measured: a single task still gets its dispatch job (the worker finds no
server and parks it in its waiting line), a job's tasks go to that line at once. Beside
the rate: the API processes' CPU ms per accepted task (gunicorn and its workers), and
the whole stack's until every task waits in its line (for single tasks that includes
the dispatch jobs the worker runs after the 201s).

Afterwards every task of the part is cancelled (the jobs with ``POST
/api/jobs/{id}/cancel``, the single tasks one by one) and its waiting line removed, so
the parts after this one see no trace of it but the CANCELLED rows: beat's safety net
never wakes that line (no server has room for it), and the orphan sweep only looks at
PENDING rows."""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from app.store import keys
from app.store.waiting_lines import profile_id
from bench.common import ApiClient, log, summary_ms, wait_until
from bench.stack import BenchStack

#: No registered server has it: the part's tasks wait and are never dispatched.
CAPABILITY = "bench-jobs-unserved"
TEMPLATE = {"type": "echo", "capabilities": [CAPABILITY], "mode": "sync"}
#: The accept rate the issue aims at (issue 13), tasks/s.
AIM_PER_S = 5000
#: Fan-out jobs each parallel thread sends, one after the other.
PARALLEL_JOBS_EACH = 2


def single_body(i: int) -> dict[str, Any]:
    return {**TEMPLATE, "payload": {"i": i}}


def job_body(shape: str, size: int, start: int) -> bytes:
    """A job of ``size`` tasks, JSON-encoded before the clock starts."""
    if shape == "items":
        body: dict[str, Any] = {"template": TEMPLATE, "items": [{"i": start + i} for i in range(size)]}
    else:
        body = {"tasks": [single_body(start + i) for i in range(size)]}
    return json.dumps({"name": f"bench-{shape}-{start}", **body}).encode()


class Accepting:
    """The part's client: one owner, one line, every id it made (for the cleanup)."""

    def __init__(self, stack: BenchStack, threads: int, job_size: int) -> None:
        self.stack = stack
        self.threads = threads
        self.job_size = job_size
        self.owner = f"jobs-{uuid.uuid4().hex[:8]}"
        self.client = ApiClient(stack, self.owner, ["client"])
        self.line = keys.waiting_line(profile_id([CAPABILITY], None))
        self.redis = stack.redis()
        #: (job id, tasks) of every job sent.
        self.jobs: list[tuple[str, int]] = []
        self.single_ids: list[str] = []
        self.lock = threading.Lock()
        self.next_item = 0

    def items(self, n: int) -> int:
        """The first of ``n`` fresh item numbers (payloads differ across the part)."""
        with self.lock:
            start, self.next_item = self.next_item, self.next_item + n
        return start

    def post_job(self, body: bytes) -> float:
        """POST /api/jobs; milliseconds until its 201."""
        t0 = time.perf_counter()
        r = self.client.session().post(
            f"{self.client.api}/jobs",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=600,
        )
        ms = (time.perf_counter() - t0) * 1000
        if r.status_code != 201:
            raise RuntimeError(f"POST /api/jobs: HTTP {r.status_code} {r.text[:300]}")
        answer = r.json()
        with self.lock:
            self.jobs.append((str(answer["id"]), int(answer["total"])))
        return ms

    def submit_single(self, i: int) -> float:
        t0 = time.perf_counter()
        task_id = self.client.submit(single_body(i))
        ms = (time.perf_counter() - t0) * 1000
        with self.lock:
            self.single_ids.append(task_id)
        return ms

    def waiting(self) -> int:
        return int(self.redis.zcard(self.line))

    def measure(self, what: str, n: int, send: Any) -> dict[str, Any]:
        """Run ``send()`` (it makes ``n`` tasks and returns the request times in ms),
        then wait until all ``n`` wait in the line. Rates and CPU of both windows."""
        before = self.waiting()
        cpu0, t0 = self.stack.cpu_seconds(), time.perf_counter()
        request_ms = send()
        accepted_s = time.perf_counter() - t0
        cpu1 = self.stack.cpu_seconds()
        wait_until(
            lambda: self.waiting() >= before + n, 300, f"{what}: {n:,} tasks in line", self.stack, 0.05
        )
        waited_s = time.perf_counter() - t0
        cpu2 = self.stack.cpu_seconds()
        accept_cpu = _per_task(cpu0, cpu1, n)
        settled_cpu = _per_task(cpu0, cpu2, n)
        out = {
            "tasks": n,
            "seconds": accepted_s,
            "tasks_per_s": n / accepted_s,
            "request_ms": summary_ms(request_ms),
            "api_cpu_ms_per_task": accept_cpu.get("web", 0.0),
            "cpu_ms_per_task_by_process": accept_cpu,
            "all_waiting_after_s": waited_s,
            "stack_cpu_ms_per_task_until_waiting": round(sum(settled_cpu.values()), 3),
            "cpu_ms_per_task_until_waiting_by_process": settled_cpu,
        }
        log(
            f"  {what}: {out['tasks_per_s']:,.0f} tasks/s accepted ({n:,} in {accepted_s:.1f} s),"
            f" API CPU {out['api_cpu_ms_per_task']:.3f} ms per task; all waiting after {waited_s:.1f} s,"
            f" stack CPU {out['stack_cpu_ms_per_task_until_waiting']:.3f} ms per task by then"
        )
        return out

    def cleanup(self) -> dict[str, Any]:
        """Cancel every task of the part; remove its waiting line and profile. The
        time each job's cancel took is kept (POST /api/jobs/{id}/cancel, all its tasks
        waiting)."""
        t0 = time.perf_counter()
        session = self.client.session()
        cancel_ms: list[float] = []
        job_tasks = 0
        for job_id, total in self.jobs:
            t1 = time.perf_counter()
            r = session.post(f"{self.client.api}/jobs/{job_id}/cancel", timeout=600)
            if r.status_code != 200:
                raise RuntimeError(f"cancelling job {job_id}: HTTP {r.status_code} {r.text[:300]}")
            if total == self.job_size:
                cancel_ms.append((time.perf_counter() - t1) * 1000)
            job_tasks += total
        jobs_s = time.perf_counter() - t0

        def cancel(task_id: str) -> None:
            r = self.client.session().post(f"{self.client.api}/task/{task_id}/cancel", timeout=30)
            if r.status_code != 200:
                raise RuntimeError(f"cancelling task {task_id}: HTTP {r.status_code} {r.text[:300]}")

        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(cancel, self.single_ids))
        conn = self.stack.connect_db()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FILTER (WHERE status = 'CANCELLED'),"
                    " count(*) FILTER (WHERE status <> 'CANCELLED') FROM tasks WHERE owner = %s",
                    (self.owner,),
                )
                cancelled, left = (int(x) for x in cur.fetchone())
        finally:
            conn.close()
        if left:
            raise RuntimeError(f"part 7: {left} tasks not CANCELLED after the cleanup")
        pid = profile_id([CAPABILITY], None)
        self.redis.delete(self.line, keys.waiting_clients(pid))
        self.redis.hdel(keys.WAITING_PROFILES, pid)
        self.redis.close()
        return {
            "seconds": time.perf_counter() - t0,
            "jobs_cancel_s": jobs_s,
            "job_tasks_cancelled": job_tasks,
            "job_cancel_ms": summary_ms(cancel_ms),
            "tasks_cancelled": cancelled,
        }


def _per_task(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
    per = {name: round((after.get(name, 0.0) - before.get(name, 0.0)) * 1000 / n, 3) for name in after}
    return dict(sorted(per.items(), key=lambda kv: -kv[1]))


def part_jobs(
    stack: BenchStack, single_n: int, job_size: int, jobs_n: int, parallel: int, threads: int
) -> dict[str, Any]:
    """Single POST /api/task from ``threads`` threads (``single_n`` tasks), then
    ``jobs_n`` jobs of ``job_size`` in each shape one at a time, then ``parallel``
    threads sending ``PARALLEL_JOBS_EACH`` fan-out jobs each."""
    from bench.dispatch_parts import settle

    started = time.monotonic()
    settle(stack)
    acc = Accepting(stack, threads, job_size)
    out: dict[str, Any] = {"capability": CAPABILITY, "job_size": job_size, "threads": threads}
    log("part 7: warming up (a few single tasks, a small job of each shape) ...")
    warm = acc.items(2 * threads)

    def warm_singles() -> list[float]:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(acc.submit_single, range(warm, warm + 2 * threads)))

    acc.measure("warm-up, single", 2 * threads, warm_singles)
    for shape in ("items", "tasks"):
        acc.measure(
            f"warm-up, {shape}", 100, lambda s=shape: [acc.post_job(job_body(s, 100, acc.items(100)))]
        )
    settle(stack)

    log(f"part 7: {single_n:,} single POST /api/task from {threads} threads ...")
    start = acc.items(single_n)

    def singles() -> list[float]:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(acc.submit_single, range(start, start + single_n)))

    out["single"] = acc.measure("single", single_n, singles)
    settle(stack)

    for shape in ("items", "tasks"):
        bodies = [job_body(shape, job_size, acc.items(job_size)) for _ in range(jobs_n)]
        log(f"part 7: {jobs_n} jobs of {job_size:,} ({shape}), one at a time ...")
        out[f"job_{shape}"] = acc.measure(
            f"jobs, {shape}", jobs_n * job_size, lambda b=bodies: [acc.post_job(x) for x in b]
        )
        out[f"job_{shape}"]["jobs"] = jobs_n
        settle(stack)

    if parallel > 0:
        count = parallel * PARALLEL_JOBS_EACH
        bodies = [job_body("items", job_size, acc.items(job_size)) for _ in range(count)]
        log(f"part 7: {count} jobs of {job_size:,} (items) from {parallel} threads ...")

        def in_parallel() -> list[float]:
            chunks = [bodies[i::parallel] for i in range(parallel)]
            with ThreadPoolExecutor(parallel) as pool:
                timed = pool.map(lambda chunk: [acc.post_job(b) for b in chunk], chunks)
                return [ms for chunk in timed for ms in chunk]

        out["job_parallel"] = acc.measure("jobs in parallel", count * job_size, in_parallel)
        out["job_parallel"].update({"jobs": count, "parallel_threads": parallel})
    # After a failure the run ends and the stack goes with it: nothing to clean then.
    log("part 7: cancelling the part's tasks ...")
    out["cleanup"] = acc.cleanup()
    log(f"  {out['cleanup']['seconds']:.1f} s")
    single = out["single"]["tasks_per_s"]
    out["ratio"] = out["job_items"]["tasks_per_s"] / single
    out["tasks_ratio"] = out["job_tasks"]["tasks_per_s"] / single
    if "job_parallel" in out:
        out["parallel_ratio"] = out["job_parallel"]["tasks_per_s"] / single
    out["aim_per_s"] = AIM_PER_S
    out["part_seconds"] = time.monotonic() - started
    return out


# -- the table (bench/run.py prints it) ------------------------------------------


def jobs_rows(jb: dict[str, Any]) -> list[tuple[str, ...]]:
    single, items, listed = jb["single"], jb["job_items"], jb["job_tasks"]
    size = f"{jb['job_size']:,}"
    base = f"{single['tasks_per_s']:,.0f} tasks/s (single)"
    aim = f">= {jb['aim_per_s']:,}/s"

    def row(
        what: str, ours: str, baseline: str = "", ratio: str = "", met: bool | None = None
    ) -> tuple[str, ...]:
        return (
            "7",
            what,
            ours,
            baseline,
            ratio,
            aim if met is not None else "",
            "-" if met is None else ("yes" if met else "NO"),
        )

    rows = [
        row(
            f"accepted, one POST /api/task each, {jb['threads']} threads, {single['tasks']:,} tasks",
            f"{single['tasks_per_s']:,.0f} tasks/s",
        ),
        row(
            f"  jobs of {size} (template + items), one at a time, {items['jobs']} jobs",
            f"{items['tasks_per_s']:,.0f} tasks/s",
            base,
            f"{jb['ratio']:.1f}x",
            items["tasks_per_s"] >= jb["aim_per_s"],
        ),
        row(
            f"  jobs of {size} (tasks list), one at a time, {listed['jobs']} jobs",
            f"{listed['tasks_per_s']:,.0f} tasks/s",
            base,
            f"{jb['tasks_ratio']:.1f}x",
            listed["tasks_per_s"] >= jb["aim_per_s"],
        ),
    ]
    if par := jb.get("job_parallel"):
        rows.append(
            row(
                f"  jobs of {size} (template + items), {par['parallel_threads']} threads, {par['jobs']} jobs",
                f"{par['tasks_per_s']:,.0f} tasks/s",
                base,
                f"{jb['parallel_ratio']:.1f}x",
                par["tasks_per_s"] >= jb["aim_per_s"],
            )
        )
    ways = [single, items, listed] + ([par] if par else [])
    rows.append(
        row(
            "  API CPU ms per accepted task, single / items / tasks" + (" / parallel" if par else ""),
            " / ".join(f"{w['api_cpu_ms_per_task']:.3f}" for w in ways),
        )
    )
    rows.append(
        row(
            "  stack CPU ms per task until all wait in line, same order",
            " / ".join(f"{w['stack_cpu_ms_per_task_until_waiting']:.2f}" for w in ways),
        )
    )
    return rows


def print_jobs_notes(jb: dict[str, Any]) -> None:
    """The lines under the table about part 7."""
    clean = jb["cleanup"]
    print(
        f"part 7, {jb['part_seconds']:.0f} s (cleanup {clean['seconds']:.0f} s): tasks for"
        f" capability {jb['capability']!r}, which no server has; accepted = first request to last 201"
    )
    if clean["job_cancel_ms"]["n"]:
        print(
            f"  cancelling a job of {jb['job_size']:,} waiting tasks (POST /api/jobs/{{id}}/cancel):"
            f" p50 {clean['job_cancel_ms']['p50_ms']:,.0f} ms, max {clean['job_cancel_ms']['max_ms']:,.0f} ms"
            f" over {clean['job_cancel_ms']['n']} jobs"
        )
    for key in ("single", "job_items", "job_tasks", "job_parallel"):
        w = jb.get(key)
        if not w:
            continue
        top = ", ".join(
            f"{k} {v:.3f}" for k, v in w["cpu_ms_per_task_until_waiting_by_process"].items() if v >= 0.005
        )
        req = w["request_ms"]
        print(
            f"  {key}: request p50 {req['p50_ms']:.1f} ms, p99 {req['p99_ms']:.1f} ms; all waiting"
            f" {w['all_waiting_after_s']:.1f} s after the first request; CPU ms per task by then: {top}"
        )
