"""`make chaos` / `make chaos-quick`: failures with real processes, each
scenario printing its figures and PASS or FAIL, bounded in time, loopback only.

    python -m bench.chaos [--quick] [--only NAME ...] [--seed N]

A run starts from nothing in a new temporary directory: its own
Redis-compatible server (AOF) and its own PostgreSQL instance on free
loopback ports, real `manage.py rqworker` processes (forking, with RQ's
scheduler) and a real `manage.py jobs monitor`. The report goes to
docs/resilience.md (docs/resilience-quick.md with --quick).
"""
