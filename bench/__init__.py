"""Benchmarks: the console against plain RQ, same run, same server (issue 3)."""
