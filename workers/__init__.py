"""Celery workers: thin shells that take ids and call services."""
