"""The long-running processes and what they run: the monitor (recorder,
alerts, outbox relay, sweeps), the scheduler's firings and the Prometheus
collector. They sit on the core (services, selectors) and the backend; nothing
below them imports them. See docs/architecture.md.
"""
