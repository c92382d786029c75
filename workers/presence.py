"""Each worker says it is alive in Redis every few seconds, so ``/api/ready`` and
``/api/status`` can count workers without a broadcast round trip to all of them."""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from app.core.errors import StoreUnavailable
from app.extensions import context_of

log = logging.getLogger("taskfleet.presence")

#: Seconds between two "alive" marks (status counts workers seen in the last 30 s).
BEAT_EVERY_S = 10.0

_stop = threading.Event()


def _beat_forever(name: str) -> None:
    from workers.celery_app import flask_app  # the worker's entry module, loaded by now

    ctx = context_of(flask_app)
    while not _stop.is_set():
        try:
            ctx.workers.beat(name, ctx.now_ms())
        except StoreUnavailable:
            log.warning("could not mark worker %s alive: redis unavailable", name)
        _stop.wait(BEAT_EVERY_S)


@worker_ready.connect
def _start(sender: Any, **_: Any) -> None:
    _stop.clear()
    threading.Thread(target=_beat_forever, args=(sender.hostname,), name="presence", daemon=True).start()


@worker_shutdown.connect
def _stop_beating(**_: Any) -> None:
    _stop.set()
