"""Waiting lines: PENDING tasks no server could take yet, one line per requirement
profile (capabilities + group), holding each client's tasks ordered by priority then
age, and shared between clients fairly when a slot frees (``lua/waiting_pop.lua``).

Work per freed slot does not grow with the number of profiles: each pool keeps the set
of waiting profiles its servers can serve (``keys.pool_waiting``), filled when a
profile starts waiting (from its candidate pools) and when a pool is created; a
profile no pool serves is in no set and costs a release nothing. A profile leaves when
its line empties, and the number of distinct profiles is capped (``admit``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import redis

from app.store import keys, scripts
from app.store.redis_client import redis_errors
from app.store.script_calls import (
    WaitingAdmitCall,
    WaitingParkCall,
    WaitingPopCall,
    WaitingSweepCall,
    WaitingUnparkCall,
)

#: The client all tasks share when fair sharing is off: one global order per profile.
EVERYONE = "*"
#: Stale heads a pop corrects per profile and take (bounds its work; see waiting_pop.lua).
MAX_FIXES = 8
#: Members removed per unpark call (Lua's unpack has a limit).
UNPARK_CHUNK = 1000


def _profile_text(capabilities: Sequence[str], group: str | None) -> str:
    """How a profile is kept in ``WAITING_PROFILES``: 'cap1,cap2|group'."""
    return ",".join(sorted(capabilities)) + "|" + (group or "")


def parse_profile(text: str) -> tuple[tuple[str, ...], str | None]:
    caps, _, group = text.rpartition("|")
    return tuple(c for c in caps.split(",") if c), group or None


def profile_id(capabilities: Sequence[str], group: str | None) -> str:
    return hashlib.sha1(_profile_text(capabilities, group).encode()).hexdigest()[:12]


def member(client: str, score: float, task_id: str) -> str:
    """A line entry: the client's prefix, the score in 16 digits, the task id; so one
    client's entries are one lexical range, best first."""
    return f"{len(client.encode())}:{client}{max(0, int(score)):016d}{task_id}"


@dataclass(frozen=True)
class Entry:
    """A task in a waiting line: its profile, its client and its two possible scores
    (``score`` is the one it waits with; ``other`` the one it may have waited with)."""

    task_id: str
    capabilities: Sequence[str]
    group: str | None
    client: str
    score: float
    other: float

    @property
    def profile(self) -> str:
        return profile_id(self.capabilities, self.group)

    def members(self) -> tuple[str, str]:
        return member(self.client, self.score, self.task_id), member(self.client, self.other, self.task_id)


class WaitingLines:
    """Park tasks by requirement profile and client; take the ones a pool serves, fairly.

    A task that leaves PENDING some other way is taken out by ``unpark`` (cancel, wait
    timeout); an entry left behind is dropped by whoever takes it, who checks the task
    is still PENDING.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._park = scripts.load(client, "waiting_park")
        self._pop = scripts.load(client, "waiting_pop")
        self._unpark = scripts.load(client, "waiting_unpark")
        self._admit = scripts.load(client, "waiting_admit")
        self._sweep = scripts.load(client, "waiting_sweep")

    # -- parking ------------------------------------------------------------------------

    def _park_call(self, entries: Sequence[Entry], pools: Sequence[str]) -> WaitingParkCall:
        first = entries[0]
        pid = first.profile
        return WaitingParkCall(
            profiles=keys.WAITING_PROFILES,
            line=keys.waiting_line(pid),
            clients=keys.waiting_clients(pid),
            passes=keys.FAIR_PASSES,
            count_key=keys.WAITING_COUNT,
            pools=[(keys.pool_waiting(p), keys.pool_clock(p)) for p in pools],
            profile_id=pid,
            profile_text=_profile_text(first.capabilities, first.group),
            client=first.client,
            members=[e.members() for e in entries],
        )

    def park(self, entry: Entry, pools: Sequence[str]) -> bool:
        """Line the task up, findable by ``pools`` (its candidate pools); True if its
        profile was not waiting before (the caller then checks no new pool was missed)."""
        with redis_errors():
            return bool(self._park(self._park_call([entry], pools)))

    def park_many(self, entries: Sequence[Entry], pools_of: Callable[[Entry], Sequence[str]]) -> list[str]:
        """``park`` for many tasks: one script call per (profile, client), pipelined.
        Returns the ids of the profiles that were new."""
        groups: dict[tuple[str, str], list[Entry]] = {}
        for entry in entries:
            groups.setdefault((entry.profile, entry.client), []).append(entry)
        if not groups:
            return []
        calls = [self._park_call(group, pools_of(group[0])) for group in groups.values()]
        with redis_errors():
            answers = self._park.run_many(list(calls))
        return [pid for (pid, _), new in zip(groups, answers, strict=True) if new]

    def add_to_pools(self, pid: str, pools: Iterable[str]) -> None:
        """Make a waiting profile findable by more pools (a stale entry is harmless: the
        pool's next pop drops a profile whose line is empty)."""
        with redis_errors(), self.client.pipeline(transaction=False) as pipe:
            for pool_id in pools:
                pipe.sadd(keys.pool_waiting(pool_id), pid)
            pipe.execute()

    def index_pool(self, pool_id: str, serves: Callable[[tuple[str, ...], str | None], bool]) -> int:
        """A new pool: add every waiting profile it can serve to its set (a walk over the
        profiles, once per pool created, never per release). Returns how many."""
        added = 0
        with redis_errors():
            for pid, text in self.client.hscan_iter(keys.WAITING_PROFILES, count=1000):
                capabilities, group = parse_profile(text)
                if serves(capabilities, group):
                    added += self.client.sadd(keys.pool_waiting(pool_id), pid)
        return added

    def admit(self, profiles: Iterable[tuple[Sequence[str], str | None]], max_profiles: int) -> bool:
        """Admit these profiles under the cap, all or none; False when the new ones
        would make more than ``max_profiles`` distinct waiting profiles."""
        entries = {profile_id(c, g): _profile_text(c, g) for c, g in profiles}
        if not entries:
            return True
        call = WaitingAdmitCall(
            profiles=keys.WAITING_PROFILES, max_profiles=max_profiles, entries=list(entries.items())
        )
        with redis_errors():
            return bool(self._admit(call))

    def sweep(self, page: int) -> int:
        """Forget profiles without a line, ``page`` profiles per call from a cursor kept
        in Redis (so every profile is looked at in turn, a bounded amount each time).
        Returns how many were forgotten."""
        with redis_errors():
            cursor = int(self.client.get(keys.WAITING_SWEEP_CURSOR) or 0)
            cursor, found = self.client.hscan(keys.WAITING_PROFILES, cursor, count=page)
            self.client.set(keys.WAITING_SWEEP_CURSOR, cursor)
            if not found:
                return 0
            pids = list(found)
            call = WaitingSweepCall(
                profiles=keys.WAITING_PROFILES, lines=[keys.waiting_line(p) for p in pids], profile_ids=pids
            )
            return int(self._sweep(call))

    # -- leaving ------------------------------------------------------------------------

    def unpark(self, entries: Sequence[Entry], pools_of: Callable[[Entry], Sequence[str]]) -> int:
        """Take these tasks out of their lines (both possible entries of each); a profile
        left empty is forgotten. Returns how many entries were removed."""
        groups: dict[tuple[str, str], list[Entry]] = {}
        for entry in entries:
            groups.setdefault((entry.profile, entry.client), []).append(entry)
        calls = []
        for (pid, client), group in groups.items():
            members = [m for entry in group for m in entry.members()]
            indexes = [keys.pool_waiting(p) for p in pools_of(group[0])]
            for start in range(0, len(members), UNPARK_CHUNK):
                calls.append(
                    WaitingUnparkCall(
                        profiles=keys.WAITING_PROFILES,
                        line=keys.waiting_line(pid),
                        clients=keys.waiting_clients(pid),
                        count_key=keys.WAITING_COUNT,
                        indexes=indexes,
                        profile_id=pid,
                        client=client,
                        members=members[start : start + UNPARK_CHUNK],
                    )
                )
        if not calls:
            return 0
        with redis_errors():
            return sum(self._unpark.run_many(list(calls)))

    def take(self, pool_id: str, count: int, fair: bool = True) -> list[str]:
        """Up to ``count`` task ids the pool's servers can serve, each from the client
        most behind its fair share (``fair``) or in one global order, removed."""
        if count <= 0:
            return []
        with redis_errors():
            pids = sorted(self.client.smembers(keys.pool_waiting(pool_id)))
            if not pids:
                return []
            call = WaitingPopCall(
                passes=keys.FAIR_PASSES,
                weights=keys.CLIENT_WEIGHTS,
                profiles=keys.WAITING_PROFILES,
                count_key=keys.WAITING_COUNT,
                index=keys.pool_waiting(pool_id),
                clock=keys.pool_clock(pool_id),
                lines=[(keys.waiting_line(pid), keys.waiting_clients(pid)) for pid in pids],
                count=count,
                max_fixes=MAX_FIXES,
                advance=1 if fair else 0,
                profile_ids=pids,
            )
            return list(self._pop(call))

    # -- reading ------------------------------------------------------------------------

    def which_contain(self, entries: Sequence[Entry]) -> list[bool]:
        """For each task: is it in its profile's line (with either score)? One round trip."""
        with redis_errors(), self.client.pipeline(transaction=False) as pipe:
            for entry in entries:
                line = keys.waiting_line(entry.profile)
                for m in entry.members():
                    pipe.zscore(line, m)
            found = pipe.execute()
        return [a is not None or b is not None for a, b in zip(found[::2], found[1::2], strict=True)]

    def profiles(self) -> dict[str, tuple[tuple[str, ...], str | None]]:
        """Every waiting profile: id -> (capabilities, group), in one call (their number
        is capped by ``MAX_WAITING_PROFILES``)."""
        with redis_errors():
            raw = self.client.hgetall(keys.WAITING_PROFILES)
        return {pid: parse_profile(text) for pid, text in raw.items()}

    def profile_count(self) -> int:
        with redis_errors():
            return int(self.client.hlen(keys.WAITING_PROFILES))

    def total(self) -> int:
        """Entries in every line (kept by the scripts: one read, whatever the number of
        profiles; a task that left PENDING unseen may linger until a taker drops it)."""
        with redis_errors():
            return max(0, int(self.client.get(keys.WAITING_COUNT) or 0))
