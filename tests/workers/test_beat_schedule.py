import subprocess
import sys

import pytest
from celery import Celery

import beat_schedule
from app import create_app, jobs
from app.core.clock import ManualClock
from app.extensions import CELERY
from tests.conftest import JWT_SECRET, make_settings
from workers import maintenance_jobs


@pytest.fixture
def celery_app() -> Celery:
    """The Celery app the factory builds, with the worker's job modules loaded."""
    app: Celery = create_app(make_settings("sqlite://")).extensions[CELERY]
    app.loader.import_default_modules()
    return app


def names_in_jobs() -> set[str]:
    return {value for key, value in vars(jobs).items() if key.isupper() and isinstance(value, str)}


def test_every_scheduled_routine_is_a_known_routine_and_every_routine_is_scheduled():
    assert set(beat_schedule.ROUTINES) == set(maintenance_jobs.ROUTINES)


def test_every_routine_runs_at_most_once_a_tick():
    assert all(every_s >= beat_schedule.TICK_EVERY_S for every_s in beat_schedule.ROUTINES.values())


def test_every_job_name_is_a_registered_celery_task_and_no_routine_is_one(celery_app):
    job_names = {name for name in names_in_jobs() if name.startswith("taskfleet.")}
    assert job_names <= set(celery_app.tasks)
    assert names_in_jobs() - job_names == set(maintenance_jobs.ROUTINES)
    assert not set(maintenance_jobs.ROUTINES) & set(celery_app.tasks)


def test_beat_sends_only_the_tick_and_the_celery_app_gets_the_routes_from_settings(celery_app):
    assert celery_app.conf.beat_schedule == {
        jobs.TICK: {"task": jobs.TICK, "schedule": beat_schedule.TICK_EVERY_S}
    }
    assert jobs.TICK in celery_app.tasks
    assert celery_app.conf.task_routes[jobs.DISPATCH] == {"queue": "dispatch"}
    assert jobs.TICK not in celery_app.conf.task_routes  # the maintenance queue, the default
    assert celery_app.conf.task_default_queue == "maintenance"
    assert celery_app.conf.task_ignore_result is True


def test_the_periodic_machinery_sends_no_task_events_and_the_jobs_for_tasks_do(celery_app):
    """Flower lists what task events announce: dispatches, not a tick a second."""
    quiet = {jobs.TICK, jobs.HEALTH_CHECK}
    for name in quiet:
        assert celery_app.tasks[name].send_events is False, name
    for name in {name for name in names_in_jobs() if name.startswith("taskfleet.")} - quiet:
        assert celery_app.tasks[name].send_events is True, name


def test_the_worker_entry_is_the_celery_app_of_create_app():
    code = (
        "from workers import celery_app as entry; from app.extensions import CELERY; "
        "assert entry.app is entry.flask_app.extensions[CELERY]; print(entry.app.main)"
    )
    env = {"JWT_SECRET_KEY": JWT_SECRET, "PATH": "/usr/bin:/bin", "TASKFLEET_HOME": "/nonexistent"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "taskfleet"


def test_the_tick_job_runs_every_routine_on_both_stores(ctx):
    """On a fresh stack every routine is due: the tick runs them all, none fails."""
    ctx.clock = ManualClock()
    flask_app = create_app(context=ctx)
    with flask_app.app_context():
        ran = maintenance_jobs.tick.run()
        assert maintenance_jobs.tick.run() == {}  # the same window: nothing is due again
    assert set(ran) == set(beat_schedule.ROUTINES)
    assert not [name for name, result in ran.items() if result in ("failed", "unavailable")], ran
