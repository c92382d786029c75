"""Part 8 of the benchmark: event streams (``GET /api/task/{id}/events``) on one API process.

A second web process is started from the Procfile's web line with one gunicorn worker
(``--workers 1``: WEB_CONCURRENCY=1) on a port of its own, beside the stack's; every
figure of the part is measured against it alone. In the same run, back to back:

1. **No streams open**: ``POST /api/task`` and then ``GET /api/task/{id}`` of that
   task, one after the other from one client (a kept-alive ``requests.Session``),
   ``--streams-requests`` times: p50 and p99 of each.
2. **1,000 streams open** (``--streams``): that many tasks for a capability no server
   has, so they wait PENDING in their line, nothing runs them and their streams stay
   open, idle but for the 15 s keep-alive comments; each stream opened with the Python client
   (``taskfleet_client.AsyncClient.events``, httpx, one asyncio loop in a thread,
   a connection each). Once every stream has read its first event, the same requests
   as in 1, and the process's CPU and memory while the streams are held.
3. **Chunk latency**, once before the streams of 2 are opened and once with them open:
   ``--stream-tasks`` tasks with ``"stream": true``, all at once, on a streaming
   backend (``bench/fast_backend.py`` kind ``stream``: 20 chunks, the first 0.5 s
   after the call, the rest over 2 s, each stamped with ``time.time_ns()`` as it is
   written); each task's event stream is opened right after its submission, and for
   every chunk read, the read time minus the stamp (the backend, the Celery worker
   relaying it into Redis, the API's event hub, gunicorn and the client's parsing),
   for the first chunk of each task and for all. A chunk stamped before the client's
   stream was open would measure a replay, not the relay: those are counted and left
   out.

The part's tasks (those of 1 and 2 ask for the same unserved capability) are cancelled
afterwards, their waiting line removed and the part's web process stopped.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psutil
import requests
from taskfleet_client import AsyncClient

from app.devstack import free_port
from app.store import keys
from app.store.waiting_lines import profile_id
from bench.common import ApiClient, log, register_server, summary_ms
from bench.stack import Backend, BenchStack

#: The streaming backend's delay: its 20 chunks are spread over it.
STREAM_DELAY_S = 2.0
STREAM_SLOTS = 100
#: Target of issue 14 for POST /api/task and GET /api/task/{id} beside the streams.
P99_TARGET_MS = 50.0
#: No registered server has it: the part's tasks wait and their streams stay open.
CAPABILITY = "bench-streams-unserved"
WEB_NAME = "web-streams"


def stream_backend() -> Backend:
    return Backend("stream-1", free_port(), STREAM_DELAY_S, "stream", STREAM_SLOTS, "stream")


def start_web(stack: BenchStack) -> str:
    """The Procfile's web line with one worker on a port of its own; its API root."""
    assert stack.supervisor is not None
    port = free_port()
    web = stack.procfile["web"]
    for placeholder, value in (("${PORT:-8000}", str(port)), ("${WEB_CONCURRENCY:-2}", "1")):
        if placeholder not in web:
            raise RuntimeError(f"the Procfile's web line has no {placeholder}: {web}")
        web = web.replace(placeholder, value)
    proc = stack.supervisor.start(WEB_NAME, web)
    stack._wait(WEB_NAME, port, proc, timeout_s=60)
    return f"http://127.0.0.1:{port}/api"


def request_latency(api: str, token: str, n: int, kind: str) -> dict[str, Any]:
    """``n`` times POST /api/task (a task no server can take) then GET it, one client."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    posts, gets, ids = [], [], []
    for i in range(n):
        body = {"type": kind, "payload": {"i": i}, "capabilities": [CAPABILITY]}
        t0 = time.perf_counter()
        r = session.post(f"{api}/task", json=body, timeout=30)
        t1 = time.perf_counter()
        if r.status_code != 201:
            raise RuntimeError(f"POST /api/task: HTTP {r.status_code} {r.text[:200]}")
        task_id = r.json()["id"]
        g = session.get(f"{api}/task/{task_id}", timeout=30)
        t2 = time.perf_counter()
        if g.status_code != 200:
            raise RuntimeError(f"GET /api/task/{{id}}: HTTP {g.status_code} {g.text[:200]}")
        posts.append((t1 - t0) * 1000)
        gets.append((t2 - t1) * 1000)
        ids.append(task_id)
    session.close()
    return {"post": summary_ms(posts), "get": summary_ms(gets), "ids": ids}


#: Indexes of the held streams' counters (shared with their process).
OPENED, FAILED, ENDED = 0, 1, 2


def hold_streams(api: str, token: str, task_ids: list[str], counts: Any, stop: Any) -> None:
    """In a process of its own (so the timed client's loop is not the one holding a
    thousand connections): one event stream per task with the Python client, counted
    open at its first event, held until ``stop`` is set."""

    async def hold(client: AsyncClient, task_id: str) -> None:
        first = True
        try:
            async for _event in client.events(task_id):
                if first:
                    counts[OPENED] += 1
                    first = False
            counts[ENDED] += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - counted and logged, the part goes on
            counts[FAILED] += 1
            log(f"part 8: held stream {task_id} failed: {type(exc).__name__}: {exc}"[:300])

    async def main() -> None:
        limits = httpx.Limits(max_connections=len(task_ids) + 10, max_keepalive_connections=10)
        transport = httpx.AsyncHTTPTransport(limits=limits)
        async with AsyncClient(api, token, timeout_s=60, transport=transport) as client:
            held = [asyncio.ensure_future(hold(client, task_id)) for task_id in task_ids]
            await asyncio.get_running_loop().run_in_executor(None, stop.wait)
            for task in held:
                task.cancel()
            await asyncio.gather(*held, return_exceptions=True)

    asyncio.run(main())


class Streams:
    """Timed event streams of streaming tasks, read by the Python client on one asyncio
    loop in a thread: each chunk's read time minus its stamp."""

    def __init__(self, api: str, token: str, connections: int) -> None:
        self.api, self.token = api, token
        self.connections = connections
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-streams", daemon=True)
        self.client: AsyncClient | None = None
        self.latencies_ms: list[float] = []
        self.first_ms: list[float] = []
        self.replayed = 0
        self.chunks_per_task: list[int] = []

    def start(self) -> None:
        self.thread.start()

        async def make() -> AsyncClient:
            limits = httpx.Limits(max_connections=self.connections, max_keepalive_connections=100)
            transport = httpx.AsyncHTTPTransport(limits=limits)
            return AsyncClient(self.api, self.token, timeout_s=30, transport=transport)

        self.client = self.run(make())

    def run(self, coro: Any, timeout_s: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def timed(self, count: int, capability: str) -> dict[str, Any]:
        """Submit ``count`` streaming tasks at once, read each one's stream; seconds taken."""

        async def one(i: int) -> None:
            assert self.client is not None
            task = await self.client.submit(
                "bench-stream", {"i": i}, capabilities=[capability], stream=True, max_retries=0
            )
            opened_ns, chunks = None, 0
            asked = time.perf_counter()
            async for event in self.client.events(task.id):
                now_ns = time.time_ns()
                if opened_ns is None:
                    opened_ns = now_ns
                    opens.append((time.perf_counter() - asked) * 1000)
                if event.name != "chunk":
                    continue
                chunks += 1
                sent_ns = int(event.data["data"]["sent_ns"])
                if sent_ns < opened_ns:
                    self.replayed += 1
                    continue
                self.latencies_ms.append((now_ns - sent_ns) / 1e6)
                if event.data["data"]["i"] == 0:
                    self.first_ms.append((now_ns - sent_ns) / 1e6)
            self.chunks_per_task.append(chunks)

        lags: list[float] = []
        opens: list[float] = []

        async def lag_monitor(done: asyncio.Event) -> None:
            """How late this loop wakes from a 10 ms sleep: the client's own delay."""
            while not done.is_set():
                before = time.perf_counter()
                await asyncio.sleep(0.01)
                lags.append((time.perf_counter() - before - 0.01) * 1000)

        async def every() -> None:
            done = asyncio.Event()
            monitor = asyncio.ensure_future(lag_monitor(done))
            try:
                await asyncio.gather(*(one(i) for i in range(count)))
            finally:
                done.set()
                await monitor

        self.latencies_ms, self.first_ms, self.replayed, self.chunks_per_task = [], [], 0, []
        started = time.monotonic()
        self.run(every(), timeout_s=300)
        return {
            "seconds": round(time.monotonic() - started, 2),
            "all": summary_ms(self.latencies_ms),
            "first": summary_ms(self.first_ms),
            "replayed_left_out": self.replayed,
            "chunks_per_task_min": min(self.chunks_per_task, default=0),
            "client_loop_lag": summary_ms(lags),
            "stream_open": summary_ms(opens),
        }

    def stop(self) -> None:
        if not self.thread.is_alive():
            return

        async def close() -> None:
            if self.client is not None:
                await self.client.aclose()

        try:
            self.run(close(), timeout_s=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def web_usage(stack: BenchStack) -> dict[str, float]:
    """RSS (MiB) and open connections of the part's web process and its worker."""
    pid = stack.roots()[WEB_NAME]
    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    rss = sum(p.memory_info().rss for p in procs) / 2**20
    conns = 0
    for p in procs:
        try:
            conns += len(p.net_connections(kind="tcp"))
        except (psutil.AccessDenied, AttributeError):
            conns += len(p.connections(kind="tcp"))
    return {"rss_mib": round(rss, 1), "tcp_connections": conns}


def cancel_all(api: str, token: str, ids: list[str], threads: int) -> None:
    def cancel(task_id: str) -> None:
        requests.post(
            f"{api}/task/{task_id}/cancel", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(cancel, ids))


def part_streams(
    stack: BenchStack, streams: int, requests_n: int, stream_tasks: int, threads: int
) -> dict[str, Any]:
    started = time.monotonic()
    out: dict[str, Any] = {
        "streams": streams,
        "requests": requests_n,
        "stream_tasks": stream_tasks,
        "stream_chunks_per_task": 20,
        "stream_backend_delay_s": STREAM_DELAY_S,
        "p99_target_ms": P99_TARGET_MS,
        "web": "the Procfile's web line, --workers 1 (gevent), a port of its own",
    }
    backend = stack.backends("stream")[0]
    register_server(stack, backend)
    api = start_web(stack)
    subject = f"bench-streams-{uuid.uuid4().hex[:6]}"
    token = stack.token(subject, ["client"])
    kind = "bench-stream-held"
    made: list[str] = []
    holder = Streams(api, token, stream_tasks + 50)
    spawn = multiprocessing.get_context("spawn")
    counts = spawn.Array("i", 3)
    stop = spawn.Event()
    held_proc: Any = None
    try:
        log(f"part 8: warm-up, then {requests_n} POST + GET /api/task with no stream open ...")
        made += request_latency(api, token, 50, kind)["ids"]
        idle = request_latency(api, token, requests_n, kind)
        made += idle.pop("ids")
        out["no_streams"] = idle | {"web": web_usage(stack)}

        log(f"part 8: {streams:,} tasks no server can take, then their event streams ...")
        held = ApiClient(stack, subject, ["client"])
        held.api = api
        bodies = [
            {"type": kind, "payload": {"held": i}, "capabilities": [CAPABILITY]} for i in range(streams)
        ]
        held_ids = held.submit_many(bodies, threads)
        made += held_ids
        holder.start()
        log(f"part 8: {stream_tasks} streaming tasks, no stream held ...")
        cpu_a = stack.cpu_seconds([WEB_NAME])[WEB_NAME]
        out["chunks_no_streams"] = holder.timed(stream_tasks, backend.capability)
        cpu_b = stack.cpu_seconds([WEB_NAME])[WEB_NAME]
        out["chunks_no_streams"]["web_cpu_percent"] = round(
            (cpu_b - cpu_a) / out["chunks_no_streams"]["seconds"] * 100, 1
        )
        cpu_before = stack.cpu_seconds([WEB_NAME])[WEB_NAME]
        t0 = time.monotonic()
        held_proc = spawn.Process(
            target=hold_streams, args=(api, token, held_ids, counts, stop), name="bench-held-streams"
        )
        held_proc.start()
        deadline = t0 + 120
        while counts[OPENED] + counts[FAILED] < streams and time.monotonic() < deadline:
            stack.check_alive()
            if not held_proc.is_alive():
                raise RuntimeError(f"part 8: the process holding the streams exited ({held_proc.exitcode})")
            time.sleep(0.1)
        out["open_seconds"] = round(time.monotonic() - t0, 2)
        out["opened"] = counts[OPENED]
        log(f"  {counts[OPENED]:,} streams open in {out['open_seconds']} s ({counts[FAILED]} failed)")
        time.sleep(2.0)  # the opening burst over
        cpu_open = stack.cpu_seconds([WEB_NAME])[WEB_NAME]
        t_open = time.monotonic()

        log(f"part 8: {requests_n} POST + GET /api/task with {counts[OPENED]:,} streams open ...")
        busy = request_latency(api, token, requests_n, kind)
        made += busy.pop("ids")
        out["with_streams"] = busy | {"web": web_usage(stack)}

        quiet_s = 5.0
        cpu_a = stack.cpu_seconds([WEB_NAME])[WEB_NAME]
        time.sleep(quiet_s)
        cpu_b = stack.cpu_seconds([WEB_NAME])[WEB_NAME]
        out["held_idle_cpu_percent"] = round((cpu_b - cpu_a) / quiet_s * 100, 1)
        out["open_cpu_seconds"] = round(cpu_open - cpu_before, 2)
        out["held_seconds_before_chunks"] = round(time.monotonic() - t_open, 1)

        log(f"part 8: {stream_tasks} streaming tasks (20 chunks over {STREAM_DELAY_S:g} s each) ...")
        cpu_a = stack.cpu_seconds([WEB_NAME])[WEB_NAME]
        out["chunks_with_streams"] = holder.timed(stream_tasks, backend.capability)
        cpu_b = stack.cpu_seconds([WEB_NAME])[WEB_NAME]
        out["chunks_with_streams"]["web_cpu_percent"] = round(
            (cpu_b - cpu_a) / out["chunks_with_streams"]["seconds"] * 100, 1
        )
        out["held_still_open"] = counts[OPENED] - counts[ENDED] - counts[FAILED]
        out["held_failed_count"] = counts[FAILED]
        out["held_ended_early"] = counts[ENDED]
    finally:
        holder.stop()
        stop.set()
        if held_proc is not None:
            held_proc.join(30)
            if held_proc.is_alive():
                held_proc.terminate()
                held_proc.join(5)
    log("part 8: cancelling the part's tasks, stopping its web process ...")
    cancel_all(api, token, made, threads)
    r = stack.redis()
    pid = profile_id([CAPABILITY], None)
    r.delete(keys.waiting_line(pid), keys.waiting_clients(pid))
    r.hdel(keys.WAITING_PROFILES, pid)
    r.close()
    stack.stop_process(WEB_NAME)
    for key in ("post", "get"):
        out[f"{key}_p99_ratio"] = out["with_streams"][key]["p99_ms"] / out["no_streams"][key]["p99_ms"]
    out["met"] = all(out["with_streams"][k]["p99_ms"] <= P99_TARGET_MS for k in ("post", "get"))
    out["part_seconds"] = round(time.monotonic() - started, 1)
    return out


# -- the table (bench/run.py prints it) ------------------------------------------


def streams_rows(st: dict[str, Any]) -> list[tuple[str, ...]]:
    idle, busy = st["no_streams"], st["with_streams"]
    target = f"p99 <= {st['p99_target_ms']:g} ms"

    def met(value: float) -> str:
        return "yes" if value <= st["p99_target_ms"] else "NO"

    rows = [
        (
            "8",
            f"event streams open on one API process (gevent), of {st['streams']:,}",
            f"{st['opened']:,} in {st['open_seconds']:g} s",
            "",
            "",
            f"{st['streams']:,}",
            "yes" if st["opened"] >= st["streams"] and st["held_failed_count"] == 0 else "NO",
        )
    ]
    for key, what in (("post", "POST /api/task"), ("get", "GET /api/task/{id}")):
        rows.append(
            (
                "8",
                f"  {what} p50 / p99, {st['opened']:,} streams open",
                f"{busy[key]['p50_ms']:.1f} / {busy[key]['p99_ms']:.1f} ms",
                f"{idle[key]['p50_ms']:.1f} / {idle[key]['p99_ms']:.1f} ms none open",
                f"{st[f'{key}_p99_ratio']:.2f}x",
                target,
                met(busy[key]["p99_ms"]),
            )
        )
    idle_c, busy_c = st["chunks_no_streams"], st["chunks_with_streams"]
    for key, what in (("first", "first chunk of each task"), ("all", "every chunk")):
        b, i = busy_c[key], idle_c[key]
        rows.append(
            (
                "8",
                f"  {what}, backend write -> client read, p50 / p99 ({b['n']:,})",
                f"{b['p50_ms']:.1f} / {b['p99_ms']:.1f} ms",
                f"{i['p50_ms']:.1f} / {i['p99_ms']:.1f} ms none open",
                "",
                "",
                "-",
            )
        )
    return rows


def print_streams_notes(st: dict[str, Any]) -> None:
    idle, busy = st["no_streams"], st["with_streams"]
    print(
        f"part 8, {st['part_seconds']:.0f} s: one gunicorn gevent worker; {st['requests']} sequential"
        f" POST + GET from one client each time; held streams are of tasks no server can take"
    )
    print(
        f"  web process: {idle['web']['rss_mib']:.0f} MiB, {idle['web']['tcp_connections']} TCP connections"
        f" with no stream; {busy['web']['rss_mib']:.0f} MiB, {busy['web']['tcp_connections']} with"
        f" {st['opened']:,} open; opening them took {st['open_cpu_seconds']:.1f} CPU s;"
        f" holding them idle {st['held_idle_cpu_percent']:.1f} % of a core"
    )
    for label, c in (("none held", st["chunks_no_streams"]), ("1,000 held", st["chunks_with_streams"])):
        print(
            f"  chunks, {label}: {st['stream_tasks']} tasks x {st['stream_chunks_per_task']} chunks over"
            f" {st['stream_backend_delay_s']:g} s, all at once, in {c['seconds']:.1f} s; fewest chunks a"
            f" client read {c['chunks_per_task_min']}; replayed (left out) {c['replayed_left_out']};"
            f" max {c['all']['max_ms']:.1f} ms; web process {c['web_cpu_percent']:.0f} % of a core;"
            f" the client's loop late by p99 {c['client_loop_lag']['p99_ms']:.1f} ms; a stream's first"
            f" event p50 {c['stream_open']['p50_ms']:.0f} ms, p99 {c['stream_open']['p99_ms']:.0f} ms"
            " after it was asked for"
        )
    print(
        f"  held streams still open after: {st['held_still_open']:,}"
        + (
            f"; failed: {st['held_failed_count']} (their errors are in the log)"
            if st["held_failed_count"]
            else ""
        )
    )
