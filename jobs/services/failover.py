"""What follows a change of Redis primary (a Sentinel failover, issue 20).

Every process follows the new primary by itself (see connect.new_client);
this records the change where operators look, and puts back at once what the
database knows and the new primary may lack: the pause set. Jobs it lacks are
found by the monitor's sweep (services.reconcile), which the monitor runs
sooner after a failover.
"""

from __future__ import annotations

import logging

from jobs.models import OperatorAction
from jobs.selectors.workers import FAILOVER_ACTION
from jobs.services.control import audit
from jobs.services.queues import queue_sync_paused

log = logging.getLogger("jobs.failover")


def redis_failover_record(*, old: str, new: str) -> OperatorAction:
    """One operator-log row and one warning per change seen by a monitor."""
    log.warning("redis primary changed", extra={"old": old, "new": new})
    entry = audit(
        actor=None,
        action=FAILOVER_ACTION,
        target=f"redis {new}",
        count=1,
        reason=f"Redis primary moved from {old} to {new}",
        old=old,
        new=new,
    )
    queue_sync_paused()
    return entry
