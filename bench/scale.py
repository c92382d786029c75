"""Part 5 of the benchmark: a million task records, a year of hourly rollups, and a
backlog of waiting tasks.

* ``tasks``: ROWS finished tasks bulk-loaded with INSERT ... SELECT generate_series
  straight into Postgres (after ``taskfleet migrate``), spread over the past year,
  1,000 owners; 95 % COMPLETED, 2 % FAILED, 1 % TIMEOUT, 1 % CANCELLED; 5 types,
  20 servers. Only the ``tasks`` table: attempts and transitions of these old tasks are
  not loaded (no endpoint measured here reads them).
* ``stats_hourly``: one year of hours x (all, 5 types, 20 servers) rows.
* a backlog: two tasks hold both slots of the only server that serves them (its
  backend answers after half an hour), and BACKLOG more wait for it. Their rows (and
  first transition) are COPYed into Postgres; their hot state and waiting-line entry
  are written through taskfleet's own store calls (``TaskStateStore.put_if_absent``
  as ``submit`` does, ``waiting.park`` as ``dispatch`` does when no slot is free), the
  state a task submitted through the API ends in. Fifty tasks really submitted through
  the API are compared with them field by field.

Measured: GET /api/task/{id} (cold: the row is read and the hot state rebuilt;
warm: the hot state is in Redis), GET /api/tasks pages, the stats endpoints, and the
CPU (user+sys) of every process the benchmark started, idle without a backlog and with
the backlog waiting.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from app.core.states import TaskMode, TaskStatus
from app.core.task import TaskSpec, TaskState
from app.services import waiting
from app.services.context import build_context
from app.store import keys
from app.store.waiting_lines import profile_id
from bench.common import ApiClient, PySpy, admin_call, log, register_server, summary_ms, wait_until
from bench.stack import BenchStack

OWNERS = 1000
TYPES = ("chat", "image", "video", "embed", "echo")
SERVERS = 20
HOURS = 365 * 24
CHUNK = 100_000
YEAR_S = 365 * 24 * 3600


def task_id(g: int) -> str:
    """The id of bulk-loaded task ``g`` (Postgres computes the same: md5(...)::uuid)."""
    return str(uuid.UUID(hashlib.md5(f"tf{g}".encode()).hexdigest()))


def owner_of(g: int) -> str:
    return f"user-{g % OWNERS:04d}"


def load_tasks(conn: Any, rows: int) -> float:
    start = time.perf_counter()
    step = YEAR_S / rows
    with conn.cursor() as cur:
        for lo in range(1, rows + 1, CHUNK):
            hi = min(rows, lo + CHUNK - 1)
            cur.execute(
                """
                INSERT INTO tasks (id, owner, type, priority, payload, capabilities, mode, region,
                    server_group, max_retries, timeout_s, idempotency_key, status, version, attempts,
                    retry_base, progress, server_id, result, error, created_at, updated_at,
                    started_at, finished_at)
                SELECT md5('tf' || g)::uuid::text,
                    'user-' || lpad((g %% %(owners)s)::text, 4, '0'),
                    (%(types)s::text[])[1 + g %% 5],
                    g %% 11, jsonb_build_object('i', g), '["gpu"]'::jsonb, 'sync', NULL, NULL, 3, 3600,
                    NULL, st, 3, 1, 0, CASE WHEN st = 'COMPLETED' THEN 100 ELSE 0 END,
                    'srv-' || lpad((g %% %(servers)s)::text, 2, '0'),
                    CASE WHEN st = 'COMPLETED'
                        THEN jsonb_build_object('server', 'srv-' || lpad((g %% %(servers)s)::text, 2, '0'),
                                                'own_us', g %% 1000000) END,
                    CASE WHEN st = 'FAILED' THEN 'server srv-00: backend answered HTTP 500'
                         WHEN st = 'TIMEOUT' THEN 'timed out after 3600s on server srv-00'
                         WHEN st = 'CANCELLED' THEN 'cancelled' END,
                    at, at + interval '1 second', at + interval '10 milliseconds', at + interval '1 second'
                FROM generate_series(%(lo)s, %(hi)s) AS g,
                LATERAL (SELECT now() - make_interval(secs => (%(rows)s - g) * %(step)s) AS at,
                         CASE WHEN g %% 100 < 2 THEN 'FAILED' WHEN g %% 100 = 2 THEN 'TIMEOUT'
                              WHEN g %% 100 = 3 THEN 'CANCELLED' ELSE 'COMPLETED' END AS st) AS x
                """,
                {
                    "owners": OWNERS,
                    "types": list(TYPES),
                    "servers": SERVERS,
                    "lo": lo,
                    "hi": hi,
                    "rows": rows,
                    "step": step,
                },
            )
            log(f"  {hi:,} task rows")
        # What autovacuum would do a little later, in the middle of a measurement.
        cur.execute("VACUUM ANALYZE tasks")
    return time.perf_counter() - start


def load_rollups(conn: Any) -> int:
    """A year of past hours: scope 'a', one 't' row per type, one 's' row per server;
    and their all-time totals. Earlier parts' flushes may have written some of those
    rows already: the year is added to them, and the totals are recomputed with beat's
    flushes locked out."""
    with conn.cursor() as cur:
        cur.execute("BEGIN")  # the connection is in autocommit (for VACUUM)
        cur.execute("LOCK TABLE stats_totals IN EXCLUSIVE MODE")
        cur.execute(
            """
            WITH hours AS (
                SELECT h, date_trunc('hour', now()) - h * interval '1 hour' AS hour
                FROM generate_series(1, %(hours)s) AS h)
            INSERT INTO stats_hourly (scope, key, hour, created, completed, failed, timeout, cancelled,
                retried, duration_ms, attempts_ok, attempts_failed, attempt_ms, last_active_ms)
            SELECT 'a', '', hour, 120, 114, 2, 1, 1, 3, 114 * 900, 0, 0, 0, 0 FROM hours
            UNION ALL
            SELECT 't', t, hour, 24, 23, 1, 0, 0, 1, 23 * 900, 0, 0, 0, 0
                FROM hours, unnest(%(types)s::text[]) AS t
            UNION ALL
            SELECT 's', 'srv-' || lpad(s::text, 2, '0'), hour, 0, 0, 0, 0, 0, 0, 0, 6 + (h + s) %% 3,
                (h + s) %% 2, 900 * (6 + (h + s) %% 3),
                (extract(epoch FROM hour) * 1000)::bigint + 3500000
                FROM hours, generate_series(0, %(servers)s - 1) AS s
            ON CONFLICT (scope, key, hour) DO UPDATE SET
                created = stats_hourly.created + excluded.created,
                completed = stats_hourly.completed + excluded.completed,
                failed = stats_hourly.failed + excluded.failed,
                timeout = stats_hourly.timeout + excluded.timeout,
                cancelled = stats_hourly.cancelled + excluded.cancelled,
                retried = stats_hourly.retried + excluded.retried,
                duration_ms = stats_hourly.duration_ms + excluded.duration_ms,
                attempts_ok = stats_hourly.attempts_ok + excluded.attempts_ok,
                attempts_failed = stats_hourly.attempts_failed + excluded.attempts_failed,
                attempt_ms = stats_hourly.attempt_ms + excluded.attempt_ms,
                last_active_ms = greatest(stats_hourly.last_active_ms, excluded.last_active_ms)
            """,
            {"hours": HOURS, "types": list(TYPES), "servers": SERVERS},
        )
        count = cur.rowcount
        # The all-time totals a flush keeps beside the hourly rows.
        cur.execute(
            """
            INSERT INTO stats_totals (scope, key, created, completed, failed, timeout, cancelled,
                retried, duration_ms, attempts_ok, attempts_failed, attempt_ms, last_active_ms)
            SELECT scope, key, sum(created), sum(completed), sum(failed), sum(timeout),
                sum(cancelled), sum(retried), sum(duration_ms), sum(attempts_ok),
                sum(attempts_failed), sum(attempt_ms), max(last_active_ms)
            FROM stats_hourly GROUP BY scope, key
            ON CONFLICT (scope, key) DO UPDATE SET
                created = excluded.created,
                completed = excluded.completed,
                failed = excluded.failed,
                timeout = excluded.timeout,
                cancelled = excluded.cancelled,
                retried = excluded.retried,
                duration_ms = excluded.duration_ms,
                attempts_ok = excluded.attempts_ok,
                attempts_failed = excluded.attempts_failed,
                attempt_ms = excluded.attempt_ms,
                last_active_ms = excluded.last_active_ms
            """
        )
        cur.execute("COMMIT")
        cur.execute("VACUUM ANALYZE stats_hourly")
    return int(count)


# -- the backlog --------------------------------------------------------------------


def backlog_state(i: int, now_ms: int, total: int) -> TaskState:
    created = now_ms - (total - i)
    return TaskState(
        id=str(uuid.UUID(hashlib.md5(f"backlog{i}".encode()).hexdigest())),
        owner="backlog",
        spec=TaskSpec(type="echo", payload={"i": i}, capabilities=("blocked",), mode=TaskMode.SYNC),
        status=TaskStatus.PENDING,
        version=1,
        created_ms=created,
        updated_ms=created,
    )


def load_backlog(stack: BenchStack, conn: Any, total: int) -> float:
    start = time.perf_counter()
    now_ms = int(time.time() * 1000)
    states = [backlog_state(i, now_ms, total) for i in range(total)]
    tasks, transitions = io.StringIO(), io.StringIO()
    for s in states:
        at = _ts(s.created_ms)
        tasks.write(
            "\t".join(
                [
                    s.id,
                    s.owner,
                    s.spec.type,
                    str(s.spec.priority),
                    json.dumps(s.spec.payload),
                    json.dumps(list(s.spec.capabilities)),
                    s.spec.mode.value,
                    r"\N",
                    r"\N",
                    str(s.spec.max_retries),
                    str(s.spec.timeout_s),
                    r"\N",
                    "PENDING",
                    "1",
                    "0",
                    "0",
                    "0",
                    r"\N",
                    r"\N",
                    r"\N",
                    at,
                    at,
                    r"\N",
                    r"\N",
                ]
            )
            + "\n"
        )
        transitions.write(f"{s.id}\t1\t\\N\tPENDING\t0\t{at}\n")
    tasks.seek(0)
    transitions.seek(0)
    with conn.cursor() as cur:
        cur.copy_expert(
            "COPY tasks (id, owner, type, priority, payload, capabilities, mode, region, server_group,"
            " max_retries, timeout_s, idempotency_key, status, version, attempts, retry_base, progress,"
            " server_id, result, error, created_at, updated_at, started_at, finished_at) FROM STDIN",
            tasks,
        )
        cur.copy_expert(
            "COPY task_transitions (task_id, version, from_status, to_status, attempt, at) FROM STDIN",
            transitions,
        )
        cur.execute("VACUUM ANALYZE tasks")
        cur.execute("VACUUM ANALYZE task_transitions")
    log(f"  {total:,} backlog rows; hot state and waiting lines ...")
    ctx = build_context(stack.settings(), queue=_NoQueue())

    def hydrate(batch: list[TaskState]) -> None:
        for s in batch:
            ctx.tasks.put_if_absent(s, new=True)
            waiting.park(ctx, s)

    batches = [states[i : i + 1000] for i in range(0, total, 1000)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(hydrate, batches))
    ctx.redis.close()
    ctx.db.dispose()
    return time.perf_counter() - start


class _NoQueue:
    def enqueue(self, task_id: str, attempt: int, countdown_s: float = 0) -> None:
        raise AssertionError("the backlog loader enqueues nothing")

    def call_later(self, job: str, args: list[Any], countdown_s: float = 0) -> None:
        raise AssertionError("the backlog loader enqueues nothing")


def _ts(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}+00"


def compare_with_api(stack: BenchStack, api_ids: list[str], bulk_id: str) -> dict[str, Any]:
    """The fields and waiting-line membership of real submissions against a bulk one."""
    r = stack.redis()
    line = keys.waiting_line(profile_id(["blocked"], None))
    bulk_fields = set(r.hgetall(keys.task(bulk_id)))
    diffs = []
    for tid in api_ids:
        fields = set(r.hgetall(keys.task(tid)))
        if fields != bulk_fields:
            diffs.append(sorted(fields ^ bulk_fields))
    waiting_ids = {m[-36:] for m in r.zrange(line, 0, -1)}  # entries end with the task id
    parked = sum(1 for tid in api_ids if tid in waiting_ids)
    r.close()
    return {"api_tasks": len(api_ids), "parked": parked, "field_differences": diffs[:3]}


# -- measuring ----------------------------------------------------------------------


#: Samples per stats endpoint, unless they take longer than the budget (then at least 5).
STATS_SAMPLES, STATS_BUDGET_S = 30, 15.0


def sample(session: Any, url: str, count: int, budget_s: float) -> list[float]:
    """Up to ``count`` timed GETs after one untimed; stops after ``budget_s`` (min. 5)."""
    timed_get(session, url)
    out: list[float] = []
    deadline = time.monotonic() + budget_s
    while len(out) < count and (len(out) < 5 or time.monotonic() < deadline):
        out.append(timed_get(session, url)[0])
    return out


def timed_get(session: Any, url: str, params: dict[str, Any] | None = None) -> tuple[float, Any]:
    t0 = time.perf_counter()
    r = session.get(url, params=params, timeout=30)
    ms = (time.perf_counter() - t0) * 1000
    if r.status_code != 200:
        raise RuntimeError(f"GET {url} {params}: HTTP {r.status_code} {r.text[:300]}")
    return ms, r.json()


def idle_cpu(stack: BenchStack, seconds: float) -> dict[str, Any]:
    """CPU seconds (user+sys) of every started process over ``seconds`` of waiting,
    with what Redis and Postgres served meanwhile."""
    r = stack.redis()
    conn = stack.connect_db()

    def pg() -> tuple[int, int, int]:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT xact_commit + xact_rollback, tup_returned, tup_fetched FROM pg_stat_database"
                " WHERE datname = 'taskfleet'"
            )
            a, b, c = cur.fetchone()
        return int(a), int(b), int(c)

    stack.check_alive()
    redis0, pg0, cpu0, t0 = (
        int(r.info("stats")["total_commands_processed"]),
        pg(),
        stack.cpu_seconds(),
        time.monotonic(),
    )
    time.sleep(seconds)
    stack.check_alive()
    redis1, pg1, cpu1, t1 = (
        int(r.info("stats")["total_commands_processed"]),
        pg(),
        stack.cpu_seconds(),
        time.monotonic(),
    )
    r.close()
    conn.close()
    wall = t1 - t0
    by_process = {name: round(cpu1[name] - cpu0.get(name, 0.0), 3) for name in cpu1}
    total = sum(by_process.values())
    return {
        "seconds": round(wall, 1),
        "cpu_seconds": round(total, 2),
        "cpu_percent_of_one_core": round(total / wall * 100, 2),
        "by_process_cpu_seconds": by_process,
        "redis_commands_per_s": round((redis1 - redis0) / wall, 1),
        "postgres_transactions_per_s": round((pg1[0] - pg0[0]) / wall, 1),
        "postgres_rows_read_per_s": round((pg1[1] - pg0[1] + pg1[2] - pg0[2]) / wall, 1),
    }


def part_scale(
    stack: BenchStack, rows: int, backlog: int, idle_s: float, reads: int, py_spy: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": rows, "backlog": backlog}
    stack.stop_process("bare-celery")  # not part of taskfleet's stack; its CPU would count
    conn = stack.connect_db()
    # Load into a running system: reconcile has seen this Redis once (else its first run
    # after the load takes Redis for one that lost its data and marks every hour since
    # the oldest task for a recount from the records).
    r = stack.redis()
    wait_until(lambda: bool(r.exists(keys.ALIVE)), 60, "reconcile's first run", stack)
    r.close()
    try:
        log(f"part 5: bulk-loading {rows:,} task rows ...")
        out["load_tasks_s"] = round(load_tasks(conn, rows), 1)
        out["rollup_rows"] = load_rollups(conn)
        log(f"  {out['rollup_rows']:,} stats_hourly rows")
        blocked = stack.backends("blocked")[0]
        register_server(stack, blocked)
        holder = ApiClient(stack, "holder", ["client"])
        for i in range(blocked.max_concurrent):
            holder.submit(
                {"type": "echo", "payload": {"hold": i}, "capabilities": ["blocked"], "mode": "sync"}
            )
        with conn.cursor() as cur:

            def holding() -> bool:
                cur.execute("SELECT count(*) FROM tasks WHERE owner = 'holder' AND status = 'PROCESSING'")
                return cur.fetchone()[0] == blocked.max_concurrent

            wait_until(holding, 60, "the blocked server's slots to be taken", stack)
        log(f"part 5: idle, no backlog ({idle_s / 3:.0f} s) ...")
        out["idle_no_backlog"] = idle_cpu(stack, idle_s / 3)
        log(f"  {out['idle_no_backlog']['cpu_percent_of_one_core']:.1f} % of one core")
        log(f"part 5: loading a backlog of {backlog:,} waiting tasks ...")
        out["load_backlog_s"] = round(load_backlog(stack, conn, backlog), 1)
        api = ApiClient(stack, "backlog-api", ["client"])
        api_ids = api.submit_many(
            (
                {"type": "echo", "payload": {"i": i}, "capabilities": ["blocked"], "mode": "sync"}
                for i in range(50)
            ),
            4,
        )
        line = keys.waiting_line(profile_id(["blocked"], None))
        r = stack.redis()
        wait_until(lambda: r.zcard(line) >= backlog + 50, 120, "the backlog to wait in its line", stack)
        wait_until(lambda: r.llen("dispatch") == 0, 120, "the dispatch queue to drain", stack)
        r.close()
        out["backlog_vs_api"] = compare_with_api(stack, api_ids, backlog_state(0, 0, 1).id)
        time.sleep(2)
        log(f"part 5: idle with {backlog:,} waiting ({idle_s:.0f} s) ...")
        spy_pids = {k: v for k, v in stack.roots().items() if k == "beat" or k.startswith("worker")}
        with PySpy(py_spy, "idle", spy_pids) as spy:
            out["idle_backlog"] = idle_cpu(stack, idle_s)
        out["idle_profile"] = spy.summaries
        log(f"  {out['idle_backlog']['cpu_percent_of_one_core']:.1f} % of one core")
        out.update(measure_reads(stack, rows, reads, py_spy))
    finally:
        conn.close()
    return out


def measure_reads(stack: BenchStack, rows: int, reads: int, py_spy: bool) -> dict[str, Any]:
    rng = random.Random(6)
    api = stack.api
    owner_idx = rng.sample(range(1, OWNERS), 50)
    picks = [owner_idx[i % 50] + OWNERS * rng.randrange(rows // OWNERS) for i in range(reads)]
    picks = list(dict.fromkeys(picks))  # each read of the cold pass is a first read
    owners = sorted({owner_of(g) for g in picks})
    sessions = {o: stack.session(o, ["client"]) for o in owners}
    admin = stack.session("bench-admin", ["admin"])
    out: dict[str, Any] = {}
    log(f"part 5: status reads ({len(picks)} cold, then warm) ...")
    for s in sessions.values():  # connections open, tokens accepted once
        s.get(f"{api}/tasks", params={"limit": 1}, timeout=30)
    cold = [timed_get(sessions[owner_of(g)], f"{api}/task/{task_id(g)}")[0] for g in picks]
    warm = [timed_get(sessions[owner_of(g)], f"{api}/task/{task_id(g)}")[0] for g in picks]
    out["status_read_cold"] = summary_ms(cold)
    out["status_read_warm"] = summary_ms(warm)
    log(
        f"  cold p99 {out['status_read_cold']['p99_ms']:.1f} ms,"
        f" warm p99 {out['status_read_warm']['p99_ms']:.1f} ms"
    )
    log("part 5: task lists ...")
    pages, filtered, second = [], [], []
    for i in range(150):
        s = sessions[owners[i % len(owners)]]
        ms, body = timed_get(s, f"{api}/tasks", {"limit": 20})
        pages.append(ms)
        if i < 75:
            filtered.append(timed_get(s, f"{api}/tasks", {"limit": 20, "status": "FAILED"})[0])
            second.append(timed_get(s, f"{api}/tasks", {"limit": 20, "cursor": body["nextCursor"]})[0])
    out["list_page"] = summary_ms(pages)
    out["list_page_failed_only"] = summary_ms(filtered)
    out["list_second_page"] = summary_ms(second)
    out["list_admin_all"] = summary_ms(
        [timed_get(admin, f"{api}/tasks", {"limit": 20})[0] for _ in range(30)]
    )
    log("part 5: stats endpoints ...")
    spy_pids = {k: v for k, v in stack.roots().items() if k == "web"}
    endpoints = (
        ("stats", "/stats"),
        ("stats_hourly", "/stats/hourly"),
        ("stats_server", "/stats/servers/srv-07"),
    )
    with PySpy(py_spy, "stats", spy_pids) as spy:
        for name, path in endpoints:
            out[name] = summary_ms(sample(admin, f"{api}{path}", STATS_SAMPLES, STATS_BUDGET_S))
            log(f"  {path}: p50 {out[name]['p50_ms']:.1f} ms, p99 {out[name]['p99_ms']:.1f} ms")
    out["stats_profile"] = spy.summaries
    # After Redis lost its data, reconcile marks the hours since the last flush "dirty"
    # and every read recounts them from the records: the current hour, here.
    conn = stack.connect_db()
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO stats_dirty_hours (hour, marked_at) VALUES (date_trunc('hour', now()), now())"
            " ON CONFLICT DO NOTHING"
        )
        out["stats_dirty_hour"] = summary_ms(sample(admin, f"{api}/stats", 5, STATS_BUDGET_S))
        cur.execute("DELETE FROM stats_dirty_hours WHERE hour = date_trunc('hour', now())")
        cur.execute("SELECT count(*) FROM task_transitions WHERE at >= date_trunc('hour', now())")
        out["stats_dirty_hour"]["transitions_in_hour"] = cur.fetchone()[0]
    conn.close()
    log(f"  /stats with the current hour to recount: p50 {out['stats_dirty_hour']['p50_ms']:.0f} ms")
    _, stats_body = timed_get(admin, f"{api}/stats")
    out["stats_sample"] = {
        k: stats_body.get(k) for k in ("pendingTasks", "processingTasks", "serverCount", "totalTasks")
    }
    admin_call(stack, "GET", "/servers")
    return out
