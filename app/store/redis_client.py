"""Redis connections, with driver errors translated into ``StoreUnavailable``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import redis

from app.core.errors import RedisRefusesWrites, StoreUnavailable

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


def refuses_writes(exc: BaseException) -> bool:
    """``exc`` is Redis refusing a write: OOM past maxmemory (also when a Lua script's
    first write hits it, which comes back as a script error) or a read-only replica."""
    if isinstance(exc, (redis.ReadOnlyError, redis.exceptions.OutOfMemoryError)):
        return True
    if isinstance(exc, redis.ResponseError):
        message = str(exc)
        return "command not allowed when used memory" in message or "READONLY" in message
    return False


@contextmanager
def redis_errors() -> Iterator[None]:
    """Turn connection-level Redis failures into ``StoreUnavailable``, and Redis refusing
    writes into ``RedisRefusesWrites`` (a 503 too, not a 500)."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StoreUnavailable("redis unavailable") from exc
    except redis.ResponseError as exc:
        if refuses_writes(exc):
            raise RedisRefusesWrites() from exc
        raise


def address(url: str) -> str:
    """Where ``url`` points, without credentials or database: ``redis://host:port``."""
    parts = urlsplit(url)
    if parts.scheme == "unix" or not parts.hostname:
        return f"{parts.scheme}://{parts.path}"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{parts.port or 6379}"


def describe_failure(exc: BaseException, url: str) -> str:
    """What is wrong with Redis, in words, for /api/ready (never a password)."""
    where = address(url)
    if isinstance(exc, redis.AuthenticationError) or "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
        return f"Redis at {where} refused the password (check REDIS_URL)"
    if refuses_writes(exc):
        return f"Redis at {where} refuses writes (its memory is full or it is read-only)"
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, StoreUnavailable)):
        return f"Redis is unreachable at {where}"
    return f"Redis at {where} answered with an error"
