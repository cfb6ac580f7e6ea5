"""Who is claiming deliveries, and the claims of runs that died: the mail side of the delivery
log (`store.deliveries` holds the rows). A delivery is claimed before its send and closed
right after it, so a crash can double-send at most the one message in flight.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

# Re-exported: callers name them delivery_log.SENT, ...
from digest.statuses import DEFERRED as DEFERRED
from digest.statuses import FAILED as FAILED
from digest.statuses import LISTED_STATUSES as LISTED_STATUSES
from digest.statuses import NEEDS_ATTENTION as NEEDS_ATTENTION
from digest.statuses import PENDING as PENDING
from digest.statuses import SENDING as SENDING
from digest.statuses import SENT as SENT
from digest.statuses import SKIPPED as SKIPPED
from digest.statuses import UNKNOWN as UNKNOWN
from digest.store import Store
from digest.store.deliveries import Delivery as Delivery
from digest.store.deliveries import Outcome as Outcome
from digest.store.times import aware, naive_utc

# A claim older than this belongs to a run that died (a send takes seconds, retries < 1 min).
STALE_CLAIM = timedelta(minutes=15)
ABANDONED = ("the sending run stopped before recording the server's answer; resend with "
             "digest send --retry-unknown")


def runner_id() -> str:
    """Who is claiming: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(claimed_by: str | None) -> bool:
    """False when the claiming process is known to be gone (same host, pid not running)."""
    host, _, pid = (claimed_by or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine: only the age of the claim can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_abandoned(store: Store, now: datetime, dry_run: bool = False) -> int:
    """Turn `sending` rows of dead runs into `unknown`; return how many there are."""
    stale_before = aware(naive_utc(now - STALE_CLAIM))
    with store.transaction() as tx:
        dead = [c for c in tx.deliveries.claims()
                if not _alive(c.claimed_by) or c.claimed_at < stale_before]
        if not dry_run:
            for claim in dead:
                tx.deliveries.mark_unknown(claim, ABANDONED)
    return len(dead)
