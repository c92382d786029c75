"""Waiting lines: PENDING tasks no server could take yet, one line per requirement
profile (capabilities + group), each ordered by priority then age."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Sequence

import redis
from cachetools import TTLCache

from app.store import keys, scripts
from app.store.redis_client import redis_errors
from app.store.script_calls import WaitingPopCall

#: Seconds a process trusts its copy of the waiting profiles.
PROFILES_CACHE_TTL_S = 2.0


def _profile_text(capabilities: Sequence[str], group: str | None) -> str:
    """How a profile is kept in ``WAITING_PROFILES``: 'cap1,cap2|group'."""
    return ",".join(sorted(capabilities)) + "|" + (group or "")


def _parse_profile(text: str) -> tuple[tuple[str, ...], str | None]:
    caps, _, group = text.rpartition("|")
    return tuple(c for c in caps.split(",") if c), group or None


def profile_id(capabilities: Sequence[str], group: str | None) -> str:
    return hashlib.sha1(_profile_text(capabilities, group).encode()).hexdigest()[:12]


class WaitingLines:
    """Park tasks by requirement profile; take the best ones a set of profiles can serve.

    Entries are not removed when a task leaves PENDING some other way (cancelled, timed
    out): whoever takes an entry checks the task is still PENDING.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._pop = scripts.load(client, "waiting_pop")
        # The profiles change rarely (a task with new requirements waits for the first
        # time): every freed slot reads them, so a process trusts its copy for a moment.
        # Its own parking updates it at once; beat's wake-up covers another's.
        self._profiles: TTLCache[str, dict[str, tuple[tuple[str, ...], str | None]]] = TTLCache(
            1, PROFILES_CACHE_TTL_S
        )
        self._lock = threading.Lock()

    def park(self, task_id: str, capabilities: Sequence[str], group: str | None, score: float) -> None:
        pid, text = profile_id(capabilities, group), _profile_text(capabilities, group)
        with redis_errors(), self.client.pipeline(transaction=False) as pipe:
            pipe.hset(keys.WAITING_PROFILES, pid, text)
            pipe.zadd(keys.waiting(pid), {task_id: score})
            pipe.execute()
        with self._lock:
            known = self._profiles.get("all")
            if known is not None and pid not in known:
                known[pid] = _parse_profile(text)

    def park_many(self, entries: list[tuple[str, Sequence[str], str | None, float]]) -> None:
        """``park`` for many (task id, capabilities, group, score): one ZADD per profile."""
        lines: dict[str, dict[str, float]] = {}
        texts: dict[str, str] = {}
        for task_id, capabilities, group, score in entries:
            pid = profile_id(capabilities, group)
            texts.setdefault(pid, _profile_text(capabilities, group))
            lines.setdefault(pid, {})[task_id] = score
        if not lines:
            return
        with redis_errors(), self.client.pipeline(transaction=False) as pipe:
            pipe.hset(keys.WAITING_PROFILES, mapping=texts)
            for pid, members in lines.items():
                items = list(members.items())
                for start in range(0, len(items), 5000):
                    pipe.zadd(keys.waiting(pid), dict(items[start : start + 5000]))
            pipe.execute()
        with self._lock:
            known = self._profiles.get("all")
            if known is not None:
                for pid, text in texts.items():
                    known.setdefault(pid, _parse_profile(text))

    def which_contain(self, entries: list[tuple[str, Sequence[str], str | None]]) -> list[bool]:
        """For each (task id, capabilities, group): is the task in its profile's waiting
        line? (One round trip.)"""
        with redis_errors(), self.client.pipeline(transaction=False) as pipe:
            for task_id, capabilities, group in entries:
                pipe.zscore(keys.waiting(profile_id(capabilities, group)), task_id)
            return [score is not None for score in pipe.execute()]

    def profiles(self) -> dict[str, tuple[tuple[str, ...], str | None]]:
        """Every profile that ever waited: id -> (capabilities, group); as of up to
        ``PROFILES_CACHE_TTL_S`` ago for profiles another process added."""
        with self._lock:
            known = self._profiles.get("all")
        if known is not None:
            return dict(known)
        with redis_errors():
            raw = self.client.hgetall(keys.WAITING_PROFILES)
        out = {pid: _parse_profile(text) for pid, text in raw.items()}
        with self._lock:
            self._profiles["all"] = out
        return dict(out)

    def peek(self, pid: str, count: int) -> list[str]:
        """The first ``count`` task ids of one line, best first, left in place."""
        with redis_errors():
            return list(self.client.zrange(keys.waiting(pid), 0, count - 1))

    def total(self) -> int:
        """Entries in every line (a task that left PENDING some other way may linger
        until a taker drops it)."""
        with redis_errors():
            pids = list(self.client.hkeys(keys.WAITING_PROFILES))
            with self.client.pipeline(transaction=False) as pipe:
                for pid in pids:
                    pipe.zcard(keys.waiting(pid))
                return sum(pipe.execute())

    def take(self, profile_ids: Iterable[str], count: int) -> list[str]:
        """Up to ``count`` task ids, best first, from the given profiles' lines."""
        line_keys = [keys.waiting(pid) for pid in profile_ids]
        if not line_keys or count <= 0:
            return []
        with redis_errors():
            return list(self._pop(WaitingPopCall(lines=line_keys, count=count)))
