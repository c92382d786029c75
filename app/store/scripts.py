"""Lua scripts, read once from ``lua/*.lua`` and run with EVALSHA.

When Redis answers NOSCRIPT (after a restart or SCRIPT FLUSH) the call is made again
with EVAL and the script's text, which also caches it on the server: callers never see
that error. (redis-py's ``Script`` re-loads with SCRIPT LOAD and retries EVALSHA once,
which fails again when a second flush lands in between.)

A script is called with its call object from ``app.store.script_calls`` (its KEYS and
ARGV by name), never with positional lists.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Any

import redis
from redis.exceptions import NoScriptError

from app.store.script_calls import ScriptCall, call_class

#: Scripts whose text starts with ``lua/lib/pool.lua`` (the load balancer's helpers).
USES_POOL_LIB = frozenset({"lb_select", "lb_release", "lb_sync", "lb_rescore", "lb_restore"})


def _read(path: str) -> str:
    return resources.files("app.store").joinpath("lua", path).read_text()


@cache
def source(name: str) -> str:
    """The text of ``lua/<name>.lua`` (with its library prepended), read once per process."""
    text = _read(f"{name}.lua")
    return _read("lib/pool.lua") + "\n" + text if name in USES_POOL_LIB else text


class Script:
    """A callable Lua script bound to a client; its SHA is computed locally."""

    def __init__(self, client: redis.Redis, name: str, text: str) -> None:
        self.client = client
        self.name = name
        self.call_type = call_class(name)
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    def __call__(self, call: ScriptCall) -> Any:
        """Run the script with ``call``'s KEYS and ARGV (which must be this script's call)."""
        if type(call) is not self.call_type:
            raise TypeError(f"{self.name} takes a {self.call_type.__name__}, not a {type(call).__name__}")
        keys, args = call.keys(), call.args()
        try:
            return self.client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return self.client.eval(self.text, len(keys), *keys, *args)

    def run_many(self, calls: list[ScriptCall], chunk: int = 1000) -> list[Any]:
        """Run the script once per call, pipelined ``chunk`` at a time; the answers in
        order. Calls the server answered NOSCRIPT (its cache was flushed) run again with
        EVAL, one by one."""
        answers: list[Any] = []
        for start in range(0, len(calls), chunk):
            part = calls[start : start + chunk]
            with self.client.pipeline(transaction=False) as pipe:
                for call in part:
                    if type(call) is not self.call_type:
                        raise TypeError(f"{self.name} takes a {self.call_type.__name__}")
                    keys, args = call.keys(), call.args()
                    pipe.evalsha(self.sha, len(keys), *keys, *args)
                replies = pipe.execute(raise_on_error=False)
            for call, reply in zip(part, replies, strict=True):
                if isinstance(reply, NoScriptError):
                    keys, args = call.keys(), call.args()
                    reply = self.client.eval(self.text, len(keys), *keys, *args)
                elif isinstance(reply, Exception):
                    raise reply
                answers.append(reply)
        return answers


def load(client: redis.Redis, name: str) -> Script:
    """The script ``lua/<name>.lua`` bound to ``client`` (no round trip); it is called
    with an instance of its class in ``app.store.script_calls``."""
    return Script(client, name, source(name))
