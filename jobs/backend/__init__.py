"""The backend: the only package that imports rq, rq_scheduler, django_rq or
redis (tests/test_import_boundary.py checks it). Everything above it speaks of
job records, lanes and queues, and catches jobs.backend.errors, never a redis
exception. See docs/architecture.md.
"""
