"""Benchmarks: the console against plain RQ and Celery, same run, same server."""
