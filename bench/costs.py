"""Per-task cost of a measured window: CPU of every process, and what Postgres and
Redis served, counted rather than timed.

Counts do not move with the host's load the way wall-clock rates do, and CPU time
moves much less; so these are the figures to compare between runs on a busy machine
and to build the capacity model from (bench/README.md).

``snapshot(stack)`` before and after a window, ``per_task(before, after, n)`` gives:

- CPU ms per task of each process the stack started (each with its children), the
  taskfleet stack's sum (web, worker processes, beat, Redis, Postgres), and the CPU of
  the Postgres backends that served the benchmark's own queries (its progress polls,
  these snapshots), which ``BenchStack.cpu_seconds`` leaves out of the Postgres figure;
- Postgres statements per task from ``pg_stat_statements`` (loaded by the benchmark's
  Postgres, ``bench/stack.py``), the benchmark's own statements left out (they run as
  the ``bench_observer`` role): in all, without BEGIN/COMMIT/ROLLBACK, by kind, and the
  top normalized statements; transactions, rows written, WAL bytes (LSN delta) and WAL
  records;
- Redis commands per task from ``INFO commandstats`` (commands run inside Lua scripts
  count too, as Redis counts them), the top commands with calls and microseconds per
  task, and script calls with their microseconds (a script's time includes its inner
  commands', which are counted again under their own names).
"""

from __future__ import annotations

import re
import time
from typing import Any

from bench.stack import OBSERVER_ROLE, BenchStack

#: Redis commands the benchmark itself sends around a window.
REDIS_NOISE = ("info", "config|resetstat", "client", "hello")
#: The taskfleet stack's processes (supervisor names; worker-N are the extra worker
#: processes); backends and bare Celery are counted apart.
STACK = ("web", "beat", "redis", "postgres")
TOP_STATEMENTS = 10
TOP_COMMANDS = 25
PRINTED_COMMANDS = 12


def is_stack(name: str) -> bool:
    return name in STACK or name == "worker" or name.startswith("worker-")


def lsn_bytes(lsn: str) -> int:
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def snapshot(stack: BenchStack) -> dict[str, Any]:
    """Everything ``per_task`` compares, as of now."""
    at = time.monotonic()
    cpu = stack.cpu_seconds()
    r = stack.redis()
    info = r.info("commandstats")
    r.close()
    redis_calls = {k.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"])) for k, v in info.items()}
    statements: dict[str, list[Any]] = {}
    with stack.observer_db() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT sum(xact_commit + xact_rollback), sum(sessions), sum(tup_inserted),"
            " sum(tup_updated), sum(tup_deleted) FROM pg_stat_database WHERE datname = 'taskfleet'"
        )
        xacts, sessions, inserted, updated, deleted = (int(x or 0) for x in cur.fetchone())
        cur.execute("SELECT pg_current_wal_lsn()::text, (SELECT wal_records FROM pg_stat_wal)")
        lsn, wal_records = cur.fetchone()
        if stack.statements_tracked:
            cur.execute(
                "SELECT s.queryid::text, s.query, s.calls, s.total_exec_time, s.rows"
                " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
                " JOIN pg_roles u ON u.oid = s.userid"
                " WHERE d.datname = 'taskfleet' AND u.rolname <> %s",
                (OBSERVER_ROLE,),
            )
            for queryid, query, calls, exec_ms, rows in cur.fetchall():
                prev = statements.get(queryid)
                if prev is None:
                    statements[queryid] = [query, int(calls), float(exec_ms), int(rows)]
                else:  # the same statement from another role or top-level flag
                    prev[1] += int(calls)
                    prev[2] += float(exec_ms)
                    prev[3] += int(rows)
            cur.execute("SELECT dealloc FROM pg_stat_statements_info")
            dealloc = int(cur.fetchone()[0])
            # The benchmark's own statements (autocommit: a transaction each) are
            # taken out of the transaction count too.
            cur.execute(
                "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s"
                " JOIN pg_roles u ON u.oid = s.userid WHERE u.rolname = %s",
                (OBSERVER_ROLE,),
            )
            observer_statements = int(cur.fetchone()[0])
        else:
            dealloc = observer_statements = 0
    return {
        "at": at,
        "cpu": cpu,
        "observer_cpu": stack.observer_cpu_seconds(),
        "redis": redis_calls,
        "pg": {
            "xacts": xacts - observer_statements,
            "sessions": sessions,
            "rows_written": inserted + updated + deleted,
            "rows_inserted": inserted,
            "rows_updated": updated,
            "rows_deleted": deleted,
            "wal_lsn": lsn,
            "wal_records": int(wal_records or 0),
            "statements": statements,
            "dealloc": dealloc,
        },
    }


def statement_kind(query: str) -> str:
    """A short label: the verb and the table of each part of the statement, e.g.
    ``WITH UPDATE tasks + INSERT task_transitions``."""
    q = " ".join(query.split())
    head = q.split(" ", 1)[0].upper()
    if head in ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SET", "SHOW"):
        return head
    parts = re.findall(
        r"\b(INSERT INTO|UPDATE|DELETE FROM|SELECT .*? FROM)\s+\"?([a-z_][a-z0-9_]*)", q, flags=re.IGNORECASE
    )
    seen: list[str] = []
    for verb, table in parts:
        word = verb.split()[0].upper()
        label = f"{word} {table}"
        if label not in seen and table.lower() not in ("the", "unnest", "jsonb_to_recordset"):
            seen.append(label)
    if not seen:
        return head
    return ("WITH " if head == "WITH" else "") + " + ".join(seen[:4])


def per_task(before: dict[str, Any], after: dict[str, Any], n: int) -> dict[str, Any]:
    """What the window between two snapshots cost per task (``n`` tasks)."""
    seconds = after["at"] - before["at"]
    cpu = {
        name: (after["cpu"][name] - before["cpu"].get(name, 0.0)) * 1000 / n
        for name in after["cpu"]
        if name in before["cpu"] or name.startswith("worker")
    }
    # Already left out of Postgres' figure (BenchStack.cpu_seconds); printed apart.
    observer = (after["observer_cpu"] - before["observer_cpu"]) * 1000 / n
    stack_total = sum(v for k, v in cpu.items() if is_stack(k))
    redis_delta: dict[str, tuple[float, float]] = {}
    for name, (calls, usec) in after["redis"].items():
        c0, u0 = before["redis"].get(name, (0, 0))
        if calls - c0 > 0 and name not in REDIS_NOISE:
            redis_delta[name] = ((calls - c0) / n, (usec - u0) / n)
    redis_sorted = sorted(redis_delta.items(), key=lambda kv: -kv[1][0])
    pg0, pg1 = before["pg"], after["pg"]
    statements = []
    for queryid, (query, calls, exec_ms, rows) in pg1["statements"].items():
        q0 = pg0["statements"].get(queryid)
        d_calls = calls - (q0[1] if q0 else 0)
        if d_calls <= 0:
            continue
        d_ms = exec_ms - (q0[2] if q0 else 0.0)
        statements.append(
            {
                "calls_per_task": d_calls / n,
                "exec_us_per_call": d_ms * 1000 / d_calls,
                "rows_per_call": (rows - (q0[3] if q0 else 0)) / d_calls,
                "kind": statement_kind(query),
                "query": " ".join(query.split()),
            }
        )
    statements.sort(key=lambda s: -s["calls_per_task"])
    by_kind: dict[str, float] = {}
    for s in statements:
        by_kind[s["kind"]] = by_kind.get(s["kind"], 0.0) + s["calls_per_task"]
    tx_words = ("BEGIN", "COMMIT", "ROLLBACK")
    all_statements = sum(s["calls_per_task"] for s in statements)
    return {
        "tasks": n,
        "seconds": round(seconds, 2),
        "tasks_per_s": round(n / seconds, 1) if seconds > 0 else None,
        "cpu_ms": {k: round(v, 3) for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])},
        "cpu_ms_stack": round(stack_total, 3),
        "cpu_ms_bench_queries": round(observer, 3),
        "pg_statements": round(all_statements, 2) if pg1["statements"] or pg0["statements"] else None,
        "pg_statements_without_tx": round(
            sum(s["calls_per_task"] for s in statements if s["kind"] not in tx_words), 2
        ),
        "pg_statements_by_kind": {
            k: round(v, 2) for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1]) if v >= 0.005
        },
        "pg_top_statements": [
            {
                **s,
                "calls_per_task": round(s["calls_per_task"], 3),
                "exec_us_per_call": round(s["exec_us_per_call"]),
                "rows_per_call": round(s["rows_per_call"], 2),
                "query": s["query"][:300],
            }
            for s in statements[:TOP_STATEMENTS]
        ],
        "pg_statements_evicted": pg1["dealloc"] - pg0["dealloc"],
        "pg_transactions": round((pg1["xacts"] - pg0["xacts"]) / n, 2),
        "pg_connections_opened": round((pg1["sessions"] - pg0["sessions"]) / n, 3),
        "pg_rows_written": round((pg1["rows_written"] - pg0["rows_written"]) / n, 2),
        "pg_rows_by_op": {
            op: round((pg1[f"rows_{op}"] - pg0[f"rows_{op}"]) / n, 2)
            for op in ("inserted", "updated", "deleted")
        },
        "wal_bytes": round((lsn_bytes(pg1["wal_lsn"]) - lsn_bytes(pg0["wal_lsn"])) / n),
        "wal_records": round((pg1["wal_records"] - pg0["wal_records"]) / n, 1),
        "redis_commands": round(sum(c for c, _ in redis_delta.values()), 1),
        "redis_usec": round(sum(u for _, u in redis_delta.values()), 1),
        "redis_script_calls": round(sum(redis_delta.get(k, (0.0, 0.0))[0] for k in ("evalsha", "eval")), 2),
        # A script's time includes that of the commands it ran (counted again under
        # their own names): redis_usec counts those twice.
        "redis_script_usec": round(sum(redis_delta.get(k, (0.0, 0.0))[1] for k in ("evalsha", "eval")), 1),
        "redis_top_commands": {
            k: {"calls": round(c, 2), "usec": round(u, 1)} for k, (c, u) in redis_sorted[:TOP_COMMANDS]
        },
    }


def bare_cpu(costs: dict[str, Any]) -> float:
    """Bare Celery's CPU per task: its worker and the Redis it shares."""
    return sum(costs["cpu_ms"].get(k, 0.0) for k in ("bare-celery", "redis"))


# -- printing -----------------------------------------------------------------------


def _num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer() and digits:
        return f"{value:,.{digits}f}"
    return f"{value:,.{digits}f}"


def cost_lines(columns: list[tuple[str, dict[str, Any]]], bare: dict[str, Any] | None = None) -> list[str]:
    """A side-by-side table of per-task costs, one column per window, then the top
    Postgres statements and Redis commands of each window."""
    labels = [label for label, _ in columns] + (["bare Celery"] if bare else [])
    procs: list[str] = []
    for _, c in columns:
        for name, ms in c["cpu_ms"].items():
            shown = is_stack(name) or (name.startswith("backend") and ms >= 0.005)
            if shown and name not in procs:
                procs.append(name)
    order = {"web": 0, "worker": 1, "beat": 3, "redis": 4, "postgres": 5}
    procs.sort(key=lambda p: (order.get(p, 2 if p.startswith("worker") else 9), p))
    rows: list[tuple[str, list[str]]] = []
    for p in procs:
        cells = [_num(c["cpu_ms"].get(p, 0.0)) for _, c in columns]
        if bare:
            cells.append(_num(bare["cpu_ms"].get("redis", 0.0)) if p == "redis" else "")
        rows.append((f"CPU ms  {p}", cells))
    if bare:
        rows.append(
            ("CPU ms  bare-celery", [""] * len(columns) + [_num(bare["cpu_ms"].get("bare-celery", 0.0))])
        )
    rows.append(
        (
            "CPU ms  = stack (web+workers+beat+redis+pg)",
            [_num(c["cpu_ms_stack"]) for _, c in columns] + ([_num(bare_cpu(bare))] if bare else []),
        )
    )
    rows.append(
        (
            "CPU ms  (bench's own queries, left out)",
            [_num(c["cpu_ms_bench_queries"]) for _, c in columns] + ([""] if bare else []),
        )
    )

    def row(what: str, key: str, digits: int = 2) -> None:
        rows.append(
            (what, [_num(c[key], digits) for _, c in columns] + ([_num(bare[key], digits)] if bare else []))
        )

    row("Postgres statements", "pg_statements")
    row("  without BEGIN/COMMIT", "pg_statements_without_tx")
    row("Postgres transactions", "pg_transactions")
    row("Postgres rows written", "pg_rows_written")
    row("Postgres WAL bytes", "wal_bytes", 0)
    row("Postgres WAL records", "wal_records", 1)
    row("Postgres connections opened", "pg_connections_opened", 3)
    row("Redis commands (incl. inside Lua)", "redis_commands", 1)
    row("  of which script calls", "redis_script_calls")
    row("Redis command µs (Lua's inner ones twice)", "redis_usec", 0)
    row("  of which in scripts", "redis_script_usec", 0)
    row("tasks/s over the window", "tasks_per_s", 1)
    width = max(len(r[0]) for r in rows) + 2
    colw = [max(len(lbl), *(len(r[1][i]) for r in rows)) + 2 for i, lbl in enumerate(labels)]
    out = ["per task".ljust(width) + "".join(lbl.rjust(w) for lbl, w in zip(labels, colw, strict=True))]
    for what, cells in rows:
        out.append(what.ljust(width) + "".join(c.rjust(w) for c, w in zip(cells, colw, strict=True)))
    for label, c in columns:
        if c["pg_top_statements"]:
            out.append(
                f"top Postgres statements per task, {label} (calls/task, µs/call, rows/call, kind: text):"
            )
            for s in c["pg_top_statements"]:
                out.append(
                    f"  {s['calls_per_task']:6.2f} {s['exec_us_per_call']:6d} {s['rows_per_call']:7.2f}"
                    f"  {s['kind']}: {s['query'][:110]}"
                )
            if c["pg_statements_evicted"]:
                out.append(f"  ({c['pg_statements_evicted']} evicted from pg_stat_statements: undercounted)")
        shown = list(c["redis_top_commands"].items())[:PRINTED_COMMANDS]
        top = ", ".join(f"{k} {v['calls']:g} ({v['usec']:g} µs)" for k, v in shown)
        out.append(f"top Redis commands per task (calls, µs), {label}: {top}")
    return out
