"""The entry of the worker, beat and Flower processes: ``celery -A workers.celery_app``.

As in Flask's Celery example, the Celery app is the one ``create_app`` built
(``app.extensions["celery"]``); the jobs are ``shared_task``s that run inside the Flask
app context and reach the services Context through it.
"""

from __future__ import annotations

from celery import Celery

from app import create_app
from app.extensions import CELERY
from workers import broker_patches


def _patch_psycopg_for_gevent() -> None:
    """Under ``-P gevent`` (celery patches before it imports this module), let psycopg2
    yield to other greenlets while it waits."""
    try:
        from gevent import monkey
    except ImportError:
        return
    if monkey.is_module_patched("socket"):
        from psycogreen.gevent import patch_psycopg

        patch_psycopg()


# Without it a Redis restart can kill a worker (kombu's redis Channel.close); see
# workers/broker_patches.py.
broker_patches.install()
_patch_psycopg_for_gevent()
flask_app = create_app()
app: Celery = flask_app.extensions[CELERY]
