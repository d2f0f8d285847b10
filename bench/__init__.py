"""Benchmarks: the platform side by side with vanilla Dagster + dagster-celery (`make bench`)."""
