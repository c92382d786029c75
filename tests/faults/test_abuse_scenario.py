"""Abuse (issue 17): one client floods the waiting lines with made-up capabilities at
priority 10 while another submits ordinary work at priority 5. The second client's
tasks all complete while the flood waits; a wake-up costs the same Redis commands
before and during the flood; Redis memory stays under a stated bound."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis as redis_lib
import requests

from app.cli import mint_token
from app.core.task import front_of_line_score, waiting_score
from app.store.fleet import FleetStore
from app.store.waiting_lines import Entry, WaitingLines
from tests.conftest import make_settings
from tests.faults.conftest import record

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]

#: The profile cap for this stack: half the flood's distinct capabilities get in.
MAX_PROFILES = 5_000
FLOOD_TASKS, FLOOD_PROFILES, JOB_SIZE = 20_000, 10_000, 100
#: The flood's tasks on the real capability (they compete with bob's for the slots).
FLOOD_ECHO = 2_000
ORDINARY = 200
#: Redis used_memory while everything waits: 10,000 flood tasks, 2,000 echo tasks and
#: 5,000 profiles come to some tens of MB; the bound leaves room for the queues.
MEMORY_BOUND = 128 * 1024 * 1024
PROBES = 30


def _session(sub: str) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = (
        f"Bearer {mint_token(make_settings('sqlite://'), sub, ['client'], 3600)}"
    )
    return session


def _commands(client: redis_lib.Redis) -> Counter[str]:
    stats = client.info("commandstats")
    return Counter({k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items() if k != "cmdstat_info"})


class Probe:
    """Wake-ups on a pool of its own (its one server in maintenance, so no other process
    takes from it): commands of each, the least of several (the stack runs meanwhile)."""

    def __init__(self, client: redis_lib.Redis, pool_id: str) -> None:
        self.client = client
        self.lines = WaitingLines(client)
        self.pool = pool_id
        self.entries = [
            Entry(
                f"probe-{i}", ("probe",), None, f"prober-{i % 2}", waiting_score(5, i), front_of_line_score(5)
            )
            for i in range(4 * PROBES)
        ]
        self.lines.park_many(self.entries, lambda e: [pool_id])

    def least_commands(self) -> int:
        costs = []
        for _ in range(PROBES):
            before = _commands(self.client)
            assert len(self.lines.take(self.pool, 1)) == 1
            costs.append(sum((_commands(self.client) - before).values()))
        return min(costs)


def test_a_flood_of_made_up_profiles_neither_blocks_others_nor_slows_releases(stack):
    stack.env.update(
        {
            "MAX_WAITING_PROFILES": str(MAX_PROFILES),
            # The per-client limits (another part of issue 17) must not be what stops the flood.
            "CLIENT_SUBMITS_PER_S": "100000",
            "CLIENT_BURST": "100000",
            "CLIENT_MAX_UNFINISHED": "1000000",
        }
    )
    stack.start()
    requests.get(f"{stack.api}/health", timeout=60)  # the first answer, slow on a loaded machine
    stack.add_backend("b1", capacity=4, delay_s=0.2)
    stack.add_backend("probe", capacity=1, capabilities=["probe"])
    r = requests.put(
        f"{stack.api}/servers/probe/maintenance", json={"enabled": True}, headers=stack.admin, timeout=10
    )
    assert r.status_code == 200, r.text
    client = redis_lib.Redis.from_url(stack.redis.url, decode_responses=True)
    probe = Probe(client, FleetStore(client).pool_of_server("probe") or "")
    before_flood = probe.least_commands()

    mallory, bob = _session("mallory"), _session("bob")
    accepted: list[str] = []
    job_ids: list[str] = []
    refused = Counter[int]()

    def flood_job(j: int, capability) -> None:
        items = [
            {
                "type": "echo",
                "capabilities": [capability(j * JOB_SIZE + i)],
                "priority": 10,
                "payload": {"i": i},
            }
            for i in range(JOB_SIZE)
        ]
        r = mallory.post(f"{stack.api}/jobs", json={"tasks": items}, timeout=60)
        if r.status_code == 201:
            accepted.extend(r.json()["taskIds"])
            job_ids.append(r.json()["id"])
        else:
            assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0, r.text
            refused[r.status_code] += 1

    # Mallory's work on the real capability first: it fills the slots and waits.
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda j: flood_job(j, lambda i: "echo"), range(FLOOD_ECHO // JOB_SIZE)))
    echo_flood = list(accepted)

    # The made-up flood, and bob's ordinary tasks at the same time.
    def made_up(i: int) -> str:
        return f"made-up-{i % FLOOD_PROFILES}"

    flooder = threading.Thread(
        target=lambda: [flood_job(j, made_up) for j in range(FLOOD_TASKS // JOB_SIZE)], daemon=True
    )
    flood_started = time.monotonic()
    flooder.start()

    def ordinary(i: int) -> str:
        r = bob.post(
            f"{stack.api}/task",
            json={"type": "echo", "capabilities": ["echo"], "payload": {"i": i}},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        return r.json()["id"]

    with ThreadPoolExecutor(4) as pool:
        bobs = list(pool.map(ordinary, range(ORDINARY)))
    bob_done_s = stack.wait_final(bobs, timeout_s=300)
    echo_waiting = Counter(stack.statuses(echo_flood).values()).get("PENDING", 0)
    flooder.join(600)
    assert not flooder.is_alive()
    statuses = stack.statuses(bobs)
    assert Counter(statuses.values()) == {"COMPLETED": ORDINARY}
    # Bob was served beside mallory's higher priority, not after it.
    assert echo_waiting >= FLOOD_ECHO // 2, echo_waiting

    made_up_accepted = len(accepted) - len(echo_flood)
    profiles = client.hlen("tf:waiting:profiles")
    assert profiles <= MAX_PROFILES + 1  # made-up profiles, plus the probe's
    assert refused[429] > 0 and made_up_accepted + refused[429] * JOB_SIZE == FLOOD_TASKS
    during_flood = probe.least_commands()
    assert during_flood == before_flood, (before_flood, during_flood)
    used_memory = int(client.info("memory")["used_memory"])
    assert used_memory < MEMORY_BOUND, used_memory

    # Clean up: mallory's tasks cancelled, the lines and profiles empty again.
    def cancel(job_id: str) -> None:
        assert mallory.post(f"{stack.api}/jobs/{job_id}/cancel", timeout=60).status_code == 200

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(cancel, job_ids))
    probe.lines.unpark(probe.entries, lambda e: [probe.pool])
    stack.wait_final(accepted, timeout_s=300)
    figures = stack.check(bobs + accepted, idle_within_s=60)
    assert client.hlen("tf:waiting:profiles") == 0
    client.close()
    record(
        "abuse: made-up profiles flood",
        {
            **figures,
            "flood_accepted": made_up_accepted,
            "flood_jobs_refused_429": refused[429],
            "waiting_profiles_at_peak": profiles,
            "bob_all_completed_after_s": round(bob_done_s, 1),
            "mallory_echo_still_pending_then": echo_waiting,
            "wake_commands_before_flood": before_flood,
            "wake_commands_during_flood": during_flood,
            "redis_used_memory_mb": round(used_memory / 2**20, 1),
            "flood_seconds": round(time.monotonic() - flood_started, 1),
        },
    )
