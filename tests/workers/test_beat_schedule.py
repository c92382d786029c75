import beat_schedule
from workers.celery_app import app


def test_every_scheduled_name_is_a_registered_celery_task():
    app.loader.import_default_modules()
    for name in beat_schedule.SCHEDULE:
        assert name in app.tasks, name


def test_the_celery_app_gets_the_schedule_and_routes_from_settings():
    assert set(app.conf.beat_schedule) == set(beat_schedule.SCHEDULE)
    assert app.conf.task_routes["taskfleet.dispatch"] == {"queue": "dispatch"}
    assert app.conf.task_ignore_result is True
