"""Redis connections, with driver errors translated into ``StoreUnavailable``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from app.core.errors import StoreUnavailable

#: Connections one process opens to Redis at most. A gevent process (the API's event
#: streams, the worker's greenlets) may have hundreds of callers at once: past this
#: they wait for a free connection (``POOL_WAIT_S``) rather than fail at once, as
#: redis-py's default pool of 100 does (MaxConnectionsError).
MAX_CONNECTIONS = 400
#: Seconds a caller waits for a free connection before Redis counts as unavailable.
POOL_WAIT_S = 10


def connect(redis_url: str) -> redis.Redis:
    """A client for ``redis_url`` that answers str and retries a dropped connection once."""
    pool = redis.BlockingConnectionPool.from_url(
        redis_url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT_S,
        decode_responses=True,
        socket_timeout=10,
        socket_connect_timeout=5,
        health_check_interval=30,
        retry_on_timeout=True,
    )
    return redis.Redis(connection_pool=pool)


@contextmanager
def redis_errors() -> Iterator[None]:
    """Turn connection-level Redis failures into ``StoreUnavailable``."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StoreUnavailable("redis unavailable") from exc
