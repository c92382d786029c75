"""Lua scripts, read once from ``lua/*.lua`` and run with EVALSHA.

redis-py's ``Script`` re-loads a script when Redis answers NOSCRIPT (after a restart
or SCRIPT FLUSH), so callers never see that error.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import redis
from redis.commands.core import Script

#: Scripts whose text starts with ``lua/lib/pool.lua`` (the load balancer's helpers).
USES_POOL_LIB = frozenset({"lb_select", "lb_release", "lb_sync", "lb_rescore", "lb_restore"})


def _read(path: str) -> str:
    return resources.files("app.store").joinpath("lua", path).read_text()


@cache
def source(name: str) -> str:
    """The text of ``lua/<name>.lua`` (with its library prepended), read once per process."""
    text = _read(f"{name}.lua")
    return _read("lib/pool.lua") + "\n" + text if name in USES_POOL_LIB else text


def load(client: redis.Redis, name: str) -> Script:
    """A callable script bound to ``client``; its SHA is computed locally, no round trip."""
    return client.register_script(source(name))
