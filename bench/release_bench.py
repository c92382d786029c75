"""What one freed slot costs as waiting profiles pile up (part 4's second figure).

Run with ``make bench`` (part 4) or ``.venv/bin/python -m bench.release_bench``.

Like bench/select_bench.py it starts its own redis-server. One pool of 100 slots serves
ten requirement profiles, two clients waiting in each. A release is what a finished
attempt does: ``FleetStore.release`` (lb_release.lua), then the wake-up of the best
waiting task the freed server serves (``WaitingLines.take``: SMEMBERS of the pool's
waiting profiles and waiting_pop.lua). It is timed, and its Redis commands counted
(INFO commandstats, scripts' own commands included), with:

* the ten profiles alone;
* N more distinct profiles whose capabilities no server has, waiting (N = 10,000 and
  100,000: past the default cap of 10,000 only the store lets that many in);
* the same N profiles after their tasks were cancelled (they are gone).

Flat means the same commands and about the same microseconds at every N. Results are
printed and written as JSON to bench/results/release.json (gitignored).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from app.core.task import front_of_line_score, waiting_score
from app.store import keys
from app.store.fleet import FleetStore, ServerProfile
from app.store.limit_state import LimitState
from app.store.redis_client import connect
from app.store.waiting_lines import Entry, WaitingLines
from bench.select_bench import interrupt_on_sigterm, log, private_redis

RESULTS = Path(__file__).resolve().parent / "results" / "release.json"
SERVED = ("echo", *(f"c{i}" for i in range(9)))
PROFILES = [("echo",)] + [("echo", c) for c in SERVED[1:]]
SIZES = (10_000, 100_000)
CHUNK = 2_000


def served_entries(per_client: int) -> list[Entry]:
    return [
        Entry(f"{owner}-{caps[-1]}-{i:06d}", caps, None, owner, waiting_score(5, i), front_of_line_score(5))
        for caps in PROFILES
        for owner in ("alice", "bob")
        for i in range(per_client)
    ]


def made_up(count: int) -> list[Entry]:
    return [
        Entry(f"flood-{i}", (f"made-up-{i}",), None, "mallory", waiting_score(10, i), front_of_line_score(10))
        for i in range(count)
    ]


def commands(client: redis.Redis) -> Counter[str]:
    stats = client.info("commandstats")
    return Counter({k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items() if k != "cmdstat_info"})


class Release:
    """One pool, one server: reserve a slot (untimed), then time release + wake-up."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.fleet = FleetStore(client)
        self.lines = WaitingLines(client)
        LimitState(client).publish([], [], 0)  # no concurrency limits, published
        self.fleet.put_server(ServerProfile("s1", "online", 100, SERVED), now_ms=1)
        self.pool = self.fleet.pool_of_server("s1") or ""
        self.serial = 0

    def once(self) -> tuple[float, int]:
        self.serial += 1
        task_id = f"running-{self.serial}"
        assert self.fleet.reserve(task_id, 1, ("echo",), now_ms=2) == "s1"
        before = commands(self.client)
        t0 = time.perf_counter()
        self.fleet.release("s1", task_id, 1, 3, task_type="echo")
        taken = self.lines.take(self.pool, 1)
        elapsed = time.perf_counter() - t0
        assert len(taken) == 1, "the served lines ran dry"
        return elapsed * 1e6, sum((commands(self.client) - before).values())

    def measure(self, rounds: int) -> dict[str, Any]:
        for _ in range(20):
            self.once()
        runs = [self.once() for _ in range(rounds)]
        us = sorted(u for u, _ in runs)
        cmds = [c for _, c in runs]
        return {
            "median_us": statistics.median(us),
            "p90_us": us[int(0.9 * (len(us) - 1))],
            "commands": statistics.median(cmds),
            "commands_max": max(cmds),
        }


def run(url: str, rounds: int) -> list[dict[str, Any]]:
    client = connect(url)
    client.flushall()
    bench = Release(client)
    bench.lines.park_many(served_entries(rounds * (len(SIZES) * 2 + 2)), lambda e: [bench.pool])
    rows = [{"profiles": 10, "state": "waiting", **bench.measure(rounds)}]
    log(f"  10 profiles: {rows[-1]}")
    parked = 0
    for size in SIZES:
        flood = made_up(size)
        for start in range(parked, size, CHUNK):
            bench.lines.park_many(flood[start : start + CHUNK], lambda e: [])
        parked = size
        assert bench.lines.profile_count() == 10 + size
        rows.append({"profiles": 10 + size, "state": "waiting", **bench.measure(rounds)})
        log(f"  {10 + size:,} profiles waiting: {rows[-1]}")
    for start in range(0, parked, CHUNK):
        bench.lines.unpark(made_up(parked)[start : start + CHUNK], lambda e: [])
    assert bench.lines.profile_count() == 10
    rows.append({"profiles": 10, "state": f"after {parked:,} created and cancelled", **bench.measure(rounds)})
    log(f"  after {parked:,} cancelled: {rows[-1]}")
    assert client.hlen(keys.WAITING_PROFILES) == 10
    client.close()
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'waiting profiles':>18}  {'state':<32} {'median µs':>10} {'p90 µs':>8} {'commands':>9}")
    for row in rows:
        print(
            f"{row['profiles']:>18,}  {row['state']:<32} {row['median_us']:>10.0f} "
            f"{row['p90_us']:>8.0f} {row['commands']:>9.0f}"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.release_bench", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=300, help="releases timed per point (300)")
    p.add_argument("--output", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    interrupt_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="tf-release-") as workdir, private_redis(Path(workdir)) as url:
        log(f"release cost at 10 to {10 + SIZES[-1]:,} waiting profiles ({args.rounds} releases each) ...")
        rows = run(url, args.rounds)
    print_table(rows)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    meta = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"), "rounds": args.rounds}
    args.output.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
