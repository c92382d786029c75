"""Concurrency limits per task type, static or scaling (``/api/limits``, admin)."""

from __future__ import annotations

from taskfleet_client.models import ApiObject, integer, maybe_integer, maybe_number, nested, text, time


class DynamicLimit(ApiObject):
    """A scaling concurrency limit: it grows by ``step`` when more than twice the
    current limit wait (at most once per ``up_every_seconds``) and shrinks by ``step``
    when fewer than half of it wait (at most once per ``down_every_seconds``), within
    ``[initial, max]``. ``DynamicLimit.of(...)`` builds one for ``set_limit``."""

    __slots__ = ()

    initial = integer("initial")
    max = integer("max")
    step = integer("step")
    up_every_seconds = integer("upEverySeconds")
    down_every_seconds = integer("downEverySeconds")

    @classmethod
    def of(
        cls, initial: int, max: int, step: int, up_every_seconds: int, down_every_seconds: int
    ) -> DynamicLimit:
        return cls(
            {
                "initial": initial,
                "max": max,
                "step": step,
                "upEverySeconds": up_every_seconds,
                "downEverySeconds": down_every_seconds,
            }
        )


class LimitChange(ApiObject):
    """The last change of a limit's value."""

    __slots__ = ()

    at = time("at")
    #: The value before; None when an admin set it.
    previous = maybe_integer("from")
    to = integer("to")
    reason = text("reason")


class Limit(ApiObject):
    """The concurrency limit of one task type (``*``: all tasks together), admin."""

    __slots__ = ()

    type = text("type")
    #: A static limit's value (None for a scaling one).
    max_concurrent = maybe_integer("maxConcurrent")
    #: A scaling limit's rule (None for a static one).
    dynamic = nested("dynamic", DynamicLimit)
    #: The limit in force now.
    current = integer("current")
    #: Attempts of the type running now, and tasks it holds back.
    in_flight = integer("inFlight")
    waiting = integer("waiting")
    last_change = nested("lastChange", LimitChange)


class ClientLimitValues(ApiObject):
    """The four limits of a client; in ``stored``, None where the default applies."""

    __slots__ = ()

    submits_per_second = maybe_number("submitsPerSecond")
    burst = maybe_integer("burst")
    max_unfinished = maybe_integer("maxUnfinished")
    weight = maybe_integer("weight")


class ClientUsage(ApiObject):
    """A client's usage now."""

    __slots__ = ()

    #: Tasks it may submit at once now (None: a full bucket, the client is idle).
    tokens = maybe_number("tokens")
    #: Its unfinished tasks in the database.
    unfinished = integer("unfinished")
    #: What its submissions are checked against (never less than the true count).
    unfinished_counted = maybe_integer("unfinishedCounted")


class ClientLimits(ApiObject):
    """A client's limits (``/api/clients/{sub}/limits``, admin): what an admin set
    (``stored``), what is in force (``effective``) and its ``usage``."""

    __slots__ = ()

    sub = text("sub")
    stored = nested("stored", ClientLimitValues)
    effective = nested("effective", ClientLimitValues)
    usage = nested("usage", ClientUsage)
