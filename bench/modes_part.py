"""Part 6 of the benchmark: backend modes. Three servers with the same slots and the
same 20 ms per backend call: one task per call (sync), batches of up to 8 tasks per
call, and poll mode (the call only takes the job; taskfleet reads its status every
``pollInterval`` s). Each mode is measured as part 2 measures slow backends: its server
in maintenance while the tasks are submitted, then maintenance off, and tasks/s from
the first start to the last finish; batching and poll mode against sync, in the same
run.

Poll mode is bounded by its interval, not by the stack: a task holds its slot from its
predict call until the poll that finds it done, at least one ``pollInterval`` (1 s, the
minimum) and up to about one more, since beat starts the due polls once a second. With
16 slots that is at most 16 tasks/s, so poll mode gets fewer tasks (200 by default).

Every other server is in maintenance while the part runs, and each mode's server
outside its own run: beat's safety net (``wake_waiting``, every 5 s) wakes as many
waiting tasks as the whole fleet has free slots, for every profile with any room, so
an idle server elsewhere (part 1's has 10,000 slots) would make it wake every waiting
task of the mode being measured, each a dispatch job that finds no slot and parks
again; the figures would then depend on which parts ran before."""

from __future__ import annotations

import time
import uuid
from typing import Any

from app.devstack import free_port
from app.store import keys
from app.store.waiting_lines import profile_id
from bench.common import ApiClient, admin_call, log, percentile, register_server, wait_until
from bench.dispatch_parts import owner_progress, settle
from bench.stack import Backend, BenchStack, backend_stats

MODES = ("sync", "batch", "poll")
SLOTS = 16
DELAY_S = 0.02
BATCH = {"maxSize": 8, "maxWaitMs": 50}
POLL_INTERVAL_S = 1
#: Seconds of a quiet stack measured first: its CPU rate is taken off each mode's CPU.
IDLE_S = 5.0


def modes_backends(slots: int | None = None) -> list[Backend]:
    """One listener per mode, all in one backend process (group "modes")."""
    return [Backend(f"mode-{m}", free_port(), DELAY_S, f"mode-{m}", slots or SLOTS, m) for m in MODES]


def set_maintenance(stack: BenchStack, server_id: str, enabled: bool) -> None:
    admin_call(stack, "PUT", f"/servers/{server_id}/maintenance", {"enabled": enabled})


def isolate(stack: BenchStack, ours: set[str]) -> list[str]:
    """Put every other server in maintenance; the ids of those that were not."""
    changed = []
    for server in admin_call(stack, "GET", "/servers")["items"]:
        sid = server["id"]
        if sid not in ours and not admin_call(stack, "GET", f"/servers/{sid}")["metrics"]["maintenance"]:
            set_maintenance(stack, sid, True)
            changed.append(sid)
    return changed


def register(stack: BenchStack, backend: Backend) -> None:
    if backend.kind == "batch":
        register_server(stack, backend, batch=BATCH)
    elif backend.kind == "poll":
        register_server(stack, backend, endpoints={"status": f"{backend.url}/status"})
    else:
        register_server(stack, backend)
    set_maintenance(stack, backend.name, True)


def task_body(i: int, backend: Backend) -> dict[str, Any]:
    """Batching is the server's choice: its tasks are plain sync tasks."""
    body: dict[str, Any] = {"type": "echo", "payload": {"i": i}, "capabilities": [backend.capability]}
    if backend.kind == "poll":
        return {**body, "mode": "poll", "pollInterval": POLL_INTERVAL_S}
    return {**body, "mode": "sync"}


def slot_limit(backend: Backend) -> float:
    """Tasks/s the server's slots allow: a slot is held for one call (a batch's tasks
    hold one slot each, so batching does not raise it), or one poll interval at least."""
    held_s = POLL_INTERVAL_S if backend.kind == "poll" else backend.delay_s
    return backend.max_concurrent / held_s


def idle_cpu_rate(stack: BenchStack, seconds: float) -> float:
    """CPU seconds per second of the whole stack with nothing to do."""
    cpu0, t0 = stack.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    cpu1, wall = stack.cpu_seconds(), time.monotonic() - t0
    return sum(cpu1[k] - cpu0.get(k, 0.0) for k in cpu1) / wall


def run_mode(stack: BenchStack, backend: Backend, n: int, threads: int, idle_rate: float) -> dict[str, Any]:
    """Submit ``n`` tasks for ``backend`` (in maintenance), then maintenance off; wait
    until all are COMPLETED in the database."""
    settle(stack)
    owner = f"modes-{backend.kind}-{uuid.uuid4().hex[:8]}"
    client = ApiClient(stack, owner, ["client"])
    log(f"part 6: {backend.kind}: submitting {n:,} tasks for {backend.name} in maintenance ...")
    client.submit_many((task_body(i, backend) for i in range(n)), threads)
    line = keys.waiting_line(profile_id([backend.capability], None))
    r = stack.redis()
    wait_until(lambda: r.zcard(line) >= n, 300, f"{n} tasks waiting in their line", stack)
    r.close()
    before = backend_stats(backend)
    conn = stack.connect_db()
    limit = slot_limit(backend)

    def all_done() -> bool:
        done, bad, _first, _last = owner_progress(conn, owner)
        if bad:
            raise RuntimeError(f"{bad} {backend.kind} tasks ended FAILED/TIMEOUT/CANCELLED; see {stack.logs}")
        return done >= n

    try:
        released = time.time()
        cpu0, wall0 = stack.cpu_seconds(), time.monotonic()
        set_maintenance(stack, backend.name, False)
        wait_until(all_done, 120 + 2 * n / min(limit, 50), f"{n} {backend.kind} tasks", stack)
        cpu1, wall = stack.cpu_seconds(), time.monotonic() - wall0
        set_maintenance(stack, backend.name, True)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT extract(epoch FROM finished_at - started_at) FROM tasks WHERE owner = %s",
                (owner,),
            )
            held_ms = [float(row[0]) * 1000 for row in cur.fetchall()]
        _, _, first, last = owner_progress(conn, owner)
    finally:
        conn.close()
    assert first is not None and last is not None
    after = backend_stats(backend)
    calls = after["calls"] - before["calls"]
    items = after["items"] - before["items"]
    polls = after["polls"] - before["polls"]
    sizes = {
        size: count - before["batch_sizes"].get(size, 0)
        for size, count in after["batch_sizes"].items()
        if count - before["batch_sizes"].get(size, 0) > 0
    }
    by_process = {k: round((cpu1[k] - cpu0.get(k, 0.0)) * 1000 / n, 2) for k in cpu1}
    total_ms = sum(by_process.values())
    rate = n / (last - first)
    out = {
        "tasks": n,
        "server": backend.name,
        "slots": backend.max_concurrent,
        "backend_delay_s": backend.delay_s,
        "slot_limit_per_s": limit,
        "first_start_after_release_s": first - released,
        "seconds": last - first,
        "tasks_per_s": rate,
        "held_ms": {"p50": percentile(held_ms, 50), "p90": percentile(held_ms, 90), "max": max(held_ms)},
        "predict_calls": calls,
        "status_polls": polls,
        "http_calls_per_task": (calls + polls) / n,
        "items_per_call": items / calls if calls else 0.0,
        "batch_sizes": dict(sorted(sizes.items(), key=lambda kv: int(kv[0]))),
        "max_in_flight": after["max_in_flight"],
        "window_s": wall,
        "cpu_ms_per_task": round(total_ms, 2),
        "cpu_ms_per_task_above_idle": round(total_ms - idle_rate * wall * 1000 / n, 2),
        "cpu_ms_per_task_by_process": dict(sorted(by_process.items(), key=lambda kv: -kv[1])),
    }
    log(
        f"  {rate:.1f} tasks/s (slot limit {limit:.0f}/s), {out['http_calls_per_task']:.2f} HTTP calls"
        f" per task, {items / max(calls, 1):.2f} tasks per call, CPU {total_ms:.1f} ms per task"
        f" ({out['cpu_ms_per_task_above_idle']:.1f} above idle)"
    )
    return out


def part_modes(stack: BenchStack, n: int, n_poll: int, threads: int) -> dict[str, Any]:
    started = time.monotonic()
    settle(stack)
    by_kind = {b.kind: b for b in stack.backends("modes")}
    for backend in by_kind.values():
        register(stack, backend)
    isolated = isolate(stack, {b.name for b in by_kind.values()})
    settle(stack)
    idle_rate = idle_cpu_rate(stack, IDLE_S)
    log(f"part 6: the idle stack uses {idle_rate * 100:.1f} % of a core")
    runs = {
        kind: run_mode(stack, by_kind[kind], n_poll if kind == "poll" else n, threads, idle_rate)
        for kind in MODES
    }
    for sid in isolated:  # for the parts after this one (after a failure the run ends)
        set_maintenance(stack, sid, False)
    sync = runs["sync"]["tasks_per_s"]
    return {
        **runs,
        "slots": by_kind["sync"].max_concurrent,
        "backend_delay_s": DELAY_S,
        "batch_config": BATCH,
        "poll_interval_s": POLL_INTERVAL_S,
        "idle_cpu_percent_of_one_core": round(idle_rate * 100, 1),
        "batch_ratio": runs["batch"]["tasks_per_s"] / sync,
        "poll_ratio": runs["poll"]["tasks_per_s"] / sync,
        "other_servers_in_maintenance": isolated,
        "part_seconds": time.monotonic() - started,
    }


# -- the table (bench/run.py prints it) ------------------------------------------


def modes_rows(md: dict[str, Any]) -> list[tuple[str, ...]]:
    sync, batch, poll = md["sync"], md["batch"], md["poll"]
    both = f"{md['slots']} slots x {md['backend_delay_s'] * 1000:g} ms"

    def row(what: str, ours: str, base: str = "", ratio: str = "") -> tuple[str, ...]:
        return ("6", what, ours, base, ratio, "", "-")

    def three(key: str, digits: int) -> str:
        return " / ".join(f"{m[key]:.{digits}f}" for m in (sync, batch, poll))

    return [
        row(
            f"modes: one task per call (sync), {both}, {sync['tasks']:,} tasks",
            f"{sync['tasks_per_s']:.1f} tasks/s",
            f"{sync['slot_limit_per_s']:.0f}/s slot limit",
            f"{sync['tasks_per_s'] / sync['slot_limit_per_s']:.2f}x",
        ),
        row(
            f"  batching, maxSize {md['batch_config']['maxSize']} (mean {batch['items_per_call']:.1f}),"
            f" same slots and call time, {batch['tasks']:,} tasks",
            f"{batch['tasks_per_s']:.1f} tasks/s",
            f"{sync['tasks_per_s']:.1f} tasks/s (sync)",
            f"{md['batch_ratio']:.2f}x",
        ),
        row(
            f"  poll mode, pollInterval {md['poll_interval_s']} s, {poll['tasks']:,} tasks"
            f" (limit {poll['slot_limit_per_s']:.0f}/s)",
            f"{poll['tasks_per_s']:.1f} tasks/s",
            f"{sync['tasks_per_s']:.1f} tasks/s (sync)",
            f"{md['poll_ratio']:.2f}x",
        ),
        row("  HTTP calls per task, sync / batch / poll", three("http_calls_per_task", 2)),
        row(
            "  stack CPU ms per task, sync / batch / poll",
            three("cpu_ms_per_task", 1),
            f"{three('cpu_ms_per_task_above_idle', 1)} above idle",
        ),
    ]


def print_modes_notes(md: dict[str, Any]) -> None:
    """The lines under the table about part 6."""
    print(
        f"part 6, {md['part_seconds']:.0f} s: idle stack {md['idle_cpu_percent_of_one_core']:.1f} % of a"
        " core (taken off for 'above idle'); CPU from maintenance off to the last finish, so"
        " without the API submissions (made before); batch sizes seen by the backend (size: calls): "
        + ", ".join(f"{k}: {v}" for k, v in md["batch"]["batch_sizes"].items())
    )
    for kind in ("sync", "batch", "poll"):
        m = md[kind]
        top = ", ".join(f"{k} {v:.1f}" for k, v in m["cpu_ms_per_task_by_process"].items() if v >= 0.1)
        print(
            f"  {kind}: {m['seconds']:.1f} s, a task held its slot p50 {m['held_ms']['p50']:.0f} ms"
            f" (p90 {m['held_ms']['p90']:.0f}); {m['predict_calls']:,} predict calls,"
            f" {m['status_polls']:,} status polls; peak {m['max_in_flight']} tasks in flight at the backend;"
            f" CPU ms per task: {top}"
        )
