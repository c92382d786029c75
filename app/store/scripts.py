"""Lua scripts, read once from ``lua/*.lua`` and run with EVALSHA.

redis-py's ``Script`` re-loads a script when Redis answers NOSCRIPT (after a restart
or SCRIPT FLUSH), so callers never see that error.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import redis
from redis.commands.core import Script


@cache
def source(name: str) -> str:
    """The text of ``lua/<name>.lua``, read from package data once per process."""
    return resources.files("app.store").joinpath("lua", f"{name}.lua").read_text()


def load(client: redis.Redis, name: str) -> Script:
    """A callable script bound to ``client``; its SHA is computed locally, no round trip."""
    return client.register_script(source(name))
