"""What ``create_app`` keeps in ``app.extensions``: the services Context and the Celery
app (built as in Flask's Celery example: ``celery_init_app`` inside the factory), and
how views and jobs reach them."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask, current_app

from app import jobs
from app.config import DISPATCH_QUEUE, MAINTENANCE_QUEUE, Settings
from app.core.errors import StoreUnavailable
from app.services.context import Context

#: ``app.extensions`` keys.
CONTEXT = "taskfleet"
CELERY = "celery"

#: Modules whose ``shared_task`` jobs a worker registers.
JOB_MODULES = ("workers.dispatch_jobs", "workers.maintenance_jobs", "workers.server_jobs", "workers.presence")


def current_context() -> Context:
    """The process's Context, from a view or a job (both run inside an app context)."""
    return context_of(current_app)


def context_of(app: Flask) -> Context:
    context: Context = app.extensions[CONTEXT]
    return context


def celery_init_app(app: Flask, settings: Settings) -> Celery:
    """The Celery app for this Flask app: configured from ``settings``, its jobs run
    inside the Flask app context (so they reach the Context as views do)."""
    from beat_schedule import beat_schedule

    class ContextTask(Task):  # type: ignore[misc]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=ContextTask)
    celery.conf.update(settings.celery_config())
    celery.conf.task_routes = {name: {"queue": DISPATCH_QUEUE} for name in jobs.ON_DISPATCH_QUEUE}
    celery.conf.task_default_queue = MAINTENANCE_QUEUE
    celery.conf.imports = JOB_MODULES
    celery.conf.beat_schedule = beat_schedule()
    celery.set_default()
    app.extensions[CELERY] = celery
    return celery


class CeleryQueue:
    """The production ``DispatchQueue``: a Celery message per job."""

    def __init__(self, celery: Celery) -> None:
        self.celery = celery

    def enqueue(self, task_id: str, attempt: int, countdown_s: float = 0) -> None:
        self._send(jobs.DISPATCH, [task_id, attempt], countdown_s, DISPATCH_QUEUE)

    def call_later(self, job: str, args: list[Any], countdown_s: float = 0) -> None:
        queue = DISPATCH_QUEUE if job in jobs.ON_DISPATCH_QUEUE else MAINTENANCE_QUEUE
        self._send(job, args, countdown_s, queue)

    def _send(self, name: str, args: list[Any], countdown_s: float, queue: str) -> None:
        try:
            self.celery.send_task(name, args=args, countdown=countdown_s or None, queue=queue)
        except Exception as exc:  # kombu raises many transport-specific errors
            raise StoreUnavailable("broker unavailable") from exc
