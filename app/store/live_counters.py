"""Live statistics counters in Redis: read them, and hand them to the flush."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from app.core.tally import Tally
from app.store import keys, scripts
from app.store.redis_client import redis_errors
from app.store.script_calls import StatsCutCall, StatsDropCall


@dataclass(frozen=True)
class Batch:
    """Counters cut off from the live hash, waiting to be added to the database."""

    id: str
    cut_ms: int
    tally: Tally


def _batch(fields: dict[str, str]) -> Batch | None:
    if "__batch" not in fields:
        return None
    return Batch(fields["__batch"], int(fields.get("__cut_ms", 0)), Tally.from_fields(fields))


class StatsCounters:
    """The counters that task_transition.lua and task_hydrate.lua keep per hour."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._cut = scripts.load(client, "stats_cut")
        self._drop = scripts.load(client, "stats_drop")

    def snapshot(self) -> tuple[Tally, Batch | None]:
        """The live counters and the batch a flush is applying, read at one instant."""
        with redis_errors(), self.client.pipeline(transaction=True) as pipe:
            pipe.hgetall(keys.STATS_LIVE)
            pipe.hgetall(keys.STATS_BATCH)
            live, batch = pipe.execute()
        return Tally.from_fields(live), _batch(batch)

    def cut(self, new_id: str, now_ms: int) -> Batch | None:
        """The batch to flush: an unfinished one, else the live counters as a new one."""
        with redis_errors():
            flat = self._cut(
                StatsCutCall(live=keys.STATS_LIVE, batch=keys.STATS_BATCH, batch_id=new_id, now_ms=now_ms)
            )
        return _batch(dict(zip(flat[::2], flat[1::2], strict=True)))

    def drop(self, batch_id: str) -> None:
        with redis_errors():
            self._drop(StatsDropCall(batch=keys.STATS_BATCH, batch_id=batch_id))
