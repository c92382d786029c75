"""Per-client state in Redis: the submission bucket and unfinished-task count each
client's submissions are admitted against (``client_*.lua``), and the fair-share
weights published for the waiting lines (``tf:clients:weights``).

Per client (a token's ``sub``): a hash ``tf:client:<sub>`` and a zset
``tf:client-admissions:<sub>`` of submissions admitted and not yet settled; both expire
when the client is idle. Losing them costs nothing but a recount from the database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

import redis

from app.core.client_limits import ClientLimits
from app.store import keys, scripts
from app.store.redis_client import redis_errors
from app.store.script_calls import ClientAdmitCall, ClientCountBeginCall, ClientCountEndCall, ClientSettleCall

#: Milliseconds a client's keys outlive its last submission at least (longer when its
#: bucket takes longer to fill: an expired bucket starts full).
IDLE_TTL_MS = 3_600_000


class Admit(IntEnum):
    """``client_admit.lua``'s answer codes."""

    ADMITTED = 0
    TOO_FAST = 1
    NOT_COUNTED = 2
    FULL = 3


@dataclass(frozen=True)
class Usage:
    """What Redis holds of a client now (None: nothing, e.g. an idle client)."""

    tokens: float | None
    unfinished_counted: int | None
    in_flight: int


def ttl_ms(limits: ClientLimits) -> int:
    """How long a client's keys live without a submission: until a bucket would be full."""
    return max(IDLE_TTL_MS, math.ceil(limits.burst / limits.submits_per_s * 1000) + 60_000)


def bucket_tokens(tokens: float, at_ms: int, now_ms: int, limits: ClientLimits) -> float:
    """The tokens of a bucket that held ``tokens`` at ``at_ms`` (the rule of client_admit.lua)."""
    return min(limits.burst, tokens + max(0, now_ms - at_ms) * limits.submits_per_s / 1000)


class ClientState:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._admit = scripts.load(client, "client_admit")
        self._settle = scripts.load(client, "client_settle")
        self._begin = scripts.load(client, "client_count_begin")
        self._end = scripts.load(client, "client_count_end")

    # -- admission ----------------------------------------------------------------------

    def admit(
        self,
        sub: str,
        limits: ClientLimits,
        count: int,
        admission: str,
        now_ms: int,
        own_count: tuple[int, int] | None = None,
    ) -> tuple[Admit, int]:
        """Take ``count`` tokens and room for ``count`` unfinished tasks for the
        ``admission`` (its id), or say why not: (code, value) as ``client_admit.lua``
        returns them. ``own_count``: (count, mark) from ``begin_count`` and the database,
        used when another recount holds the hash and it has no count yet."""
        base, mark = own_count if own_count is not None else (-1, 0)
        with redis_errors():
            code, value = self._admit(
                ClientAdmitCall(
                    usage=keys.client_usage(sub),
                    admissions=keys.client_admissions(sub),
                    now_ms=now_ms,
                    rate_per_s=limits.submits_per_s,
                    burst=limits.burst,
                    max_unfinished=limits.max_unfinished,
                    count=count,
                    admission=_member(admission, count),
                    ttl_ms=ttl_ms(limits),
                    own_base=base,
                    own_mark=mark,
                )
            )
        return Admit(int(code)), int(value)

    def settle(self, sub: str, admission: str, count: int, stored: bool) -> None:
        """The admitted submission ended: its ``count`` tasks are stored, or not."""
        with redis_errors():
            self._settle(
                ClientSettleCall(
                    usage=keys.client_usage(sub),
                    admissions=keys.client_admissions(sub),
                    admission=_member(admission, count),
                    count=count,
                    stored=int(stored),
                )
            )

    def begin_count(
        self, sub: str, limits: ClientLimits, now_ms: int, lease_ms: int, min_interval_ms: int, forced: bool
    ) -> tuple[int, int]:
        """(generation, mark) of a recount this caller may make (generation 0: not now)."""
        with redis_errors():
            generation, mark = self._begin(
                ClientCountBeginCall(
                    usage=keys.client_usage(sub),
                    now_ms=now_ms,
                    lease_ms=lease_ms,
                    min_interval_ms=min_interval_ms,
                    forced=int(forced),
                    ttl_ms=ttl_ms(limits),
                )
            )
        return int(generation), int(mark)

    def end_count(
        self,
        sub: str,
        limits: ClientLimits,
        generation: int,
        count: int,
        mark: int,
        now_ms: int,
        stale_before_ms: int,
    ) -> bool:
        """Install a recount's ``count``; False if a later recount superseded it."""
        with redis_errors():
            return bool(
                self._end(
                    ClientCountEndCall(
                        usage=keys.client_usage(sub),
                        admissions=keys.client_admissions(sub),
                        generation=generation,
                        base=count,
                        mark=mark,
                        now_ms=now_ms,
                        stale_before_ms=stale_before_ms,
                        ttl_ms=ttl_ms(limits),
                    )
                )
            )

    def usage(self, sub: str, limits: ClientLimits, now_ms: int) -> Usage:
        """The client's tokens now and its unfinished tasks as counted for admissions."""
        with redis_errors():
            tokens, at_ms, base, settled, inflight = self.client.hmget(
                keys.client_usage(sub), ["tokens", "at_ms", "base", "settled", "inflight"]
            )
        in_flight = int(inflight or 0)
        return Usage(
            tokens=None if tokens is None else bucket_tokens(float(tokens), int(at_ms), now_ms, limits),
            unfinished_counted=None if base is None else int(base) + int(settled or 0) + in_flight,
            in_flight=in_flight,
        )

    # -- fair-share weights -------------------------------------------------------------

    def put_weight(self, sub: str, weight: int | None) -> None:
        """Publish a client's weight (None: the default, so none is stored)."""
        with redis_errors():
            if weight is None:
                self.client.hdel(keys.CLIENT_WEIGHTS, sub)
            else:
                self.client.hset(keys.CLIENT_WEIGHTS, sub, weight)

    def publish_weights(self, weights: Mapping[str, int]) -> None:
        """Replace every published weight with ``weights``, in one transaction."""
        with redis_errors(), self.client.pipeline(transaction=True) as pipe:
            pipe.delete(keys.CLIENT_WEIGHTS)
            if weights:
                pipe.hset(keys.CLIENT_WEIGHTS, mapping=dict(weights))
            pipe.execute()

    def weights(self) -> dict[str, int]:
        with redis_errors():
            return {sub: int(w) for sub, w in self.client.hgetall(keys.CLIENT_WEIGHTS).items()}


def _member(admission: str, count: int) -> str:
    return f"{admission}|{count}"
