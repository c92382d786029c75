"""Concurrency limits per task type: what a limit is, and the scaling rule of a dynamic
one as a pure function of the time (``next_limit``).

A limit caps the attempts of one task type running at once (``*``: of all tasks
together). A static limit is a number; a dynamic one starts at ``initial`` and moves by
``step`` between ``initial`` and ``max`` with its backlog: it grows when more than twice
the current limit wait for it (at most once per ``up_every_s``) and shrinks when fewer
than half of it wait (at most once per ``down_every_s``). "Waiting" is the tasks held
back by that very limit (its waiting line), not every PENDING task of the type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The limit type that counts every task, whatever its type.
ALL_TYPES = "*"


#: DynamicLimit's fields -> their names in the API and the database's JSON.
JSON_NAMES = dict(
    initial="initial", max="max", step="step", up_every_s="upEverySeconds", down_every_s="downEverySeconds"
)


@dataclass(frozen=True)
class DynamicLimit:
    """A limit that scales with its backlog (the seeds: 10 to 50 by 5, up at most once a
    minute, down at most once every three)."""

    initial: int
    max: int
    step: int
    up_every_s: int
    down_every_s: int

    def __post_init__(self) -> None:
        if self.initial > self.max:
            raise ValueError("max must be at least initial")

    def to_json(self) -> dict[str, int]:
        return {name: getattr(self, field) for field, name in JSON_NAMES.items()}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> DynamicLimit:
        return cls(**{field: int(raw[name]) for field, name in JSON_NAMES.items()})


@dataclass(frozen=True)
class LimitConfig:
    """What an operator sets: exactly one of ``max_concurrent`` (static) and ``dynamic``."""

    max_concurrent: int | None = None
    dynamic: DynamicLimit | None = None

    def __post_init__(self) -> None:
        if (self.max_concurrent is None) == (self.dynamic is None):
            raise ValueError("a limit is either static (max_concurrent) or dynamic, exactly one")

    @property
    def initial(self) -> int:
        """The value a new limit starts at."""
        if self.dynamic is not None:
            return self.dynamic.initial
        assert self.max_concurrent is not None
        return self.max_concurrent

    def clamp(self, current: int) -> int:
        """``current`` within what this config allows (a replaced dynamic config keeps
        its value when it still fits)."""
        if self.dynamic is None:
            return self.initial
        return max(self.dynamic.initial, min(self.dynamic.max, current))


@dataclass(frozen=True)
class LimitChange:
    """A move of a dynamic limit: its new value and why."""

    to: int
    reason: str
    grew: bool


def next_limit(
    config: LimitConfig, current: int, waiting: int, last_up_ms: int, last_down_ms: int, now_ms: int
) -> LimitChange | None:
    """The next value of a limit given ``waiting`` tasks held back by it, or None when it
    stays. ``last_up_ms`` / ``last_down_ms``: when it last grew / shrank (0: never)."""
    dynamic = config.dynamic
    if dynamic is None:
        return None
    if current < dynamic.initial or current > dynamic.max:
        grew = current < dynamic.initial
        return LimitChange(config.clamp(current), "clamped to the configured range", grew)
    if waiting > 2 * current and current < dynamic.max and now_ms - last_up_ms >= dynamic.up_every_s * 1000:
        grown = min(dynamic.max, current + dynamic.step)
        return LimitChange(grown, f"{waiting} waiting > 2 x {current}", True)
    if (
        2 * waiting < current
        and current > dynamic.initial
        and now_ms - last_down_ms >= dynamic.down_every_s * 1000
    ):
        shrunk = max(dynamic.initial, current - dynamic.step)
        return LimitChange(shrunk, f"{waiting} waiting < {current} / 2", False)
    return None


@dataclass(frozen=True)
class Limit:
    """A limit in force: its config, its current value and its last change
    (``changed_from`` None: the change that created or replaced it)."""

    type: str
    config: LimitConfig
    current: int
    changed_ms: int
    changed_from: int | None
    change_reason: str
