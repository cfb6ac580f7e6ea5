"""The statuses of subscribers and deliveries: names only, and no imports, so the command line
can offer them (`digest deliveries --status`, `subscribers pause`) without loading the store."""

from __future__ import annotations

# A subscriber.
ACTIVE, PAUSED, UNSUBSCRIBED = "active", "paused", "unsubscribed"
SUBSCRIBER_STATUSES = (ACTIVE, PAUSED, UNSUBSCRIBED)

# A delivery of one digest to one subscriber.
PENDING, SENDING, SENT, FAILED, SKIPPED, UNKNOWN = (
    "pending", "sending", "sent", "failed", "skipped", "unknown")
# Not a stored status: a pending delivery that was tried and given back (it has a reply).
DEFERRED = "deferred"
LISTED_STATUSES = (PENDING, DEFERRED, SENDING, SENT, FAILED, SKIPPED, UNKNOWN)
NEEDS_ATTENTION = (FAILED, DEFERRED, UNKNOWN)
