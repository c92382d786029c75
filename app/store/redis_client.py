"""Redis connections, with driver errors translated into ``StoreUnavailable``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from app.core.errors import StoreUnavailable


def connect(redis_url: str) -> redis.Redis:
    """A client for ``redis_url`` that answers str and retries a dropped connection once."""
    return redis.Redis.from_url(
        redis_url,
        decode_responses=True,
        socket_timeout=10,
        socket_connect_timeout=5,
        health_check_interval=30,
        retry_on_timeout=True,
    )


@contextmanager
def redis_errors() -> Iterator[None]:
    """Turn connection-level Redis failures into ``StoreUnavailable``."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StoreUnavailable("redis unavailable") from exc
