"""Redis memory per waiting task with a large payload: kept in the task's hash (as
before issue 12) against kept in the database only (``HOT_PAYLOAD_MAX_BYTES``).

Run with ``.venv/bin/python -m bench.payload_memory [--tasks 100] [--payload-kib 1024]``.

The script uses a SQLite file in a temporary directory and, for each case, a fresh
redis-server of its own (as ``bench.select_bench`` starts one), and submits ``--tasks``
PENDING tasks through ``app.services.submit`` (durable row, then hot state; nothing
dispatches them):

* **in Redis**: ``HOT_PAYLOAD_MAX_BYTES`` raised out of reach, so every payload is
  written into its task's hash, as all payloads were before;
* **database only**: the shipped rule; the hash keeps the spec without the payload.

For each it reports ``MEMORY USAGE`` of a task hash (``SAMPLES 0``: every field
counted; the mean over the tasks) and the growth of ``used_memory`` over the whole
submission, per task.
Results are printed and written as JSON to bench/results/payload_memory.json
(gitignored).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import redis

from app.config import Settings
from app.core import task as task_rules
from app.core.task import TaskSpec
from app.services import submit
from app.services.context import build_context
from app.store import keys
from app.store.db import Database
from bench.select_bench import private_redis
from migrations import upgrade

RESULTS = Path(__file__).resolve().parent / "results" / "payload_memory.json"


class NoQueue:
    """A dispatch queue that sends nothing: the tasks stay PENDING, as in a backlog."""

    def enqueue(self, task_id: str, attempt: int, countdown_s: float = 0) -> None:
        pass

    def call_later(self, job: str, args: list[Any], countdown_s: float = 0) -> None:
        pass


def payload(kib: int) -> dict[str, str]:
    """A JSON object of ``kib`` KiB of base64 text (an image, say)."""
    raw = os.urandom(kib * 1024 * 3 // 4)
    return {"image": base64.b64encode(raw).decode()[: kib * 1024 - len('{"image":""}')]}


def measure(workdir: Path, database_url: str, tasks: int, body: dict[str, str]) -> dict[str, float]:
    """Submit ``tasks`` tasks to a fresh redis-server (a flushed one hands memory back
    lazily, which would blur the difference) and measure what they take."""
    with private_redis(workdir) as url:
        settings = Settings(database_url=database_url, redis_url=url, jwt_secret_key="b" * 40)
        client = redis.Redis.from_url(url, decode_responses=True)
        db = Database(database_url)
        context = build_context(settings, NoQueue(), redis_client=client, db=db)  # type: ignore[arg-type]
        submit.submit(context, "bench", TaskSpec(type="image"))  # scripts and counters in place
        before = int(client.info("memory")["used_memory"])
        spec = TaskSpec(type="image", payload=body)
        ids = [submit.submit(context, "bench", spec)[0].id for _ in range(tasks)]
        after = int(client.info("memory")["used_memory"])
        usage = [int(client.memory_usage(keys.task(task_id), samples=0) or 0) for task_id in ids]
        client.close()
        db.dispose()
    return {
        "memory_usage_per_hash_bytes": sum(usage) / len(usage),
        "used_memory_delta_bytes": after - before,
        "used_memory_per_task_bytes": (after - before) / tasks,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--payload-kib", type=int, default=1024)
    args = parser.parse_args(argv)
    body = payload(args.payload_kib)
    shipped = task_rules.HOT_PAYLOAD_MAX_BYTES
    with tempfile.TemporaryDirectory(prefix="tf-payload-") as tmp:
        workdir = Path(tmp)
        database_url = f"sqlite:///{workdir / 'bench.db'}"
        upgrade(database_url)
        try:
            task_rules.HOT_PAYLOAD_MAX_BYTES = sys.maxsize
            in_redis = measure(workdir, database_url, args.tasks, body)
        finally:
            task_rules.HOT_PAYLOAD_MAX_BYTES = shipped
        in_db = measure(workdir, database_url, args.tasks, body)
    results = {
        "tasks": args.tasks,
        "payload_bytes": len(json.dumps(body, separators=(",", ":"))),
        "hot_payload_max_bytes": shipped,
        "payload_in_redis": in_redis,
        "payload_in_database_only": in_db,
    }
    print(f"{args.tasks} waiting tasks, payload {results['payload_bytes']:,} bytes of JSON")
    print(f"{'':28}{'MEMORY USAGE/hash':>20}{'used_memory/task':>20}{'used_memory total':>20}")
    for name, figures in (("payload in Redis (before)", in_redis), ("database only (now)", in_db)):
        print(
            f"{name:28}{figures['memory_usage_per_hash_bytes']:>20,.0f}"
            f"{figures['used_memory_per_task_bytes']:>20,.0f}{figures['used_memory_delta_bytes']:>20,}"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
