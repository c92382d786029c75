"""Pure rules of taskfleet: no Flask, no Celery, no Redis, no database."""
