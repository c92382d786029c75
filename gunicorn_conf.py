"""gunicorn's settings for the ``web`` process (``gunicorn -c python:gunicorn_conf``).

A top-level module, not in ``app``: gunicorn's master imports it before its workers
patch the standard library for gevent, and importing ``app`` first would load ssl,
redis and requests unpatched.

The Procfile runs gunicorn's gevent worker class: a greenlet per request, so one
process holds a thousand open event streams (GET /api/task/{id}/events) beside the
ordinary requests. gunicorn patches the standard library for gevent before it loads the
app; psycopg2 is a C driver and needs psycogreen to yield while it waits on Postgres
(as the Celery worker does, workers/celery_app.py).
"""

from __future__ import annotations

from typing import Any


def post_worker_init(worker: Any) -> None:
    """In each worker, once gevent patched it: let psycopg2 yield to other greenlets."""
    from gevent import monkey

    if monkey.is_module_patched("socket"):
        from psycogreen.gevent import patch_psycopg

        patch_psycopg()
