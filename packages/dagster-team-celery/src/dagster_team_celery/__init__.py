"""Per-team Celery queues for Dagster.

Kept free of heavy imports: the worker health check imports this package every few seconds.
"""
