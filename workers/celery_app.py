"""The Celery app, built from Settings. ``celery -A workers.celery_app`` finds ``app``."""

from __future__ import annotations

import threading
from typing import Any

from celery import Celery

from app.config import DISPATCH_QUEUE, MAINTENANCE_QUEUE, Settings
from app.core.errors import StoreUnavailable
from app.logs import configure_logging
from app.services.context import Context, build_context
from beat_schedule import beat_schedule
from workers import broker_patches

DISPATCH_TASK = "taskfleet.dispatch"


def make_celery(settings: Settings) -> Celery:
    # Without it a Redis restart can kill a worker (kombu's redis Channel.close); see
    # workers/broker_patches.py.
    broker_patches.install()
    celery = Celery("taskfleet")
    celery.conf.update(settings.celery_config())
    celery.conf.task_routes = {
        DISPATCH_TASK: {"queue": DISPATCH_QUEUE},
        "taskfleet.maintenance.*": {"queue": MAINTENANCE_QUEUE},
        "taskfleet.servers.*": {"queue": MAINTENANCE_QUEUE},
    }
    celery.conf.task_default_queue = MAINTENANCE_QUEUE
    return celery


class CeleryQueue:
    """The production ``DispatchQueue``: a Celery message per dispatch job."""

    def __init__(self, celery: Celery) -> None:
        self.celery = celery

    def enqueue(self, task_id: str, attempt: int, countdown_s: float = 0) -> None:
        self._send(DISPATCH_TASK, [task_id, attempt], countdown_s, DISPATCH_QUEUE)

    def call_later(self, job: str, args: list[Any], countdown_s: float = 0) -> None:
        self._send(job, args, countdown_s, MAINTENANCE_QUEUE)

    def _send(self, name: str, args: list[Any], countdown_s: float, queue: str) -> None:
        try:
            self.celery.send_task(name, args=args, countdown=countdown_s or None, queue=queue)
        except Exception as exc:  # kombu raises many transport-specific errors
            raise StoreUnavailable("broker unavailable") from exc


_context: Context | None = None
_context_lock = threading.Lock()


def worker_context() -> Context:
    """The worker process's Context, built on first use (never at import)."""
    global _context
    with _context_lock:
        if _context is None:
            settings.require_secret()
            configure_logging(settings.log_json)
            _patch_psycopg_for_gevent()
            _context = build_context(settings, CeleryQueue(app))
        return _context


def _patch_psycopg_for_gevent() -> None:
    """Under ``-P gevent``, let psycopg2 yield to other greenlets while it waits."""
    try:
        from gevent import monkey
    except ImportError:
        return
    if monkey.is_module_patched("socket"):
        from psycogreen.gevent import patch_psycopg

        patch_psycopg()


settings = Settings.from_env()
app = make_celery(settings)
app.conf.imports = ("workers.dispatch", "workers.maintenance", "workers.fleet", "workers.presence")
app.conf.beat_schedule = beat_schedule()
