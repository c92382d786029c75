import subprocess
import sys

import pytest
from celery import Celery

import beat_schedule
from app import create_app, jobs
from app.extensions import CELERY
from tests.conftest import JWT_SECRET, make_settings


@pytest.fixture
def celery_app() -> Celery:
    """The Celery app the factory builds, with the worker's job modules loaded."""
    app: Celery = create_app(make_settings("sqlite://")).extensions[CELERY]
    app.loader.import_default_modules()
    return app


def test_every_scheduled_name_is_a_registered_celery_task(celery_app):
    for name in beat_schedule.SCHEDULE:
        assert name in celery_app.tasks, name


def test_every_job_name_is_a_registered_celery_task(celery_app):
    names = {value for key, value in vars(jobs).items() if key.isupper() and isinstance(value, str)}
    assert names <= set(celery_app.tasks)


def test_the_celery_app_gets_the_schedule_and_routes_from_settings(celery_app):
    assert set(celery_app.conf.beat_schedule) == set(beat_schedule.SCHEDULE)
    assert celery_app.conf.task_routes[jobs.DISPATCH] == {"queue": "dispatch"}
    assert celery_app.conf.task_default_queue == "maintenance"
    assert celery_app.conf.task_ignore_result is True


def test_the_worker_entry_is_the_celery_app_of_create_app():
    code = (
        "from workers import celery_app as entry; from app.extensions import CELERY; "
        "assert entry.app is entry.flask_app.extensions[CELERY]; print(entry.app.main)"
    )
    env = {"JWT_SECRET_KEY": JWT_SECRET, "PATH": "/usr/bin:/bin", "TASKFLEET_HOME": "/nonexistent"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "taskfleet"
