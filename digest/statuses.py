"""The statuses of subscribers, deliveries and cycles: names only, importing nothing but `enum` (which
click loads anyway), so the command line can offer them (`digest deliveries --status`,
`subscribers pause`) without loading the store.

Each is a `StrEnum`: it is stored as, compares equal to and prints as its value (`"active"`).
"""

from __future__ import annotations

from enum import StrEnum


class SubscriberStatus(StrEnum):
    """Whether a subscriber gets the digest."""

    ACTIVE = "active"
    PAUSED = "paused"
    UNSUBSCRIBED = "unsubscribed"


class DeliveryStatus(StrEnum):
    """Where the delivery of one digest to one subscriber stands."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"
    # Not a stored status: a pending delivery that was tried and given back (it has a reply).
    DEFERRED = "deferred"


class CycleStatus(StrEnum):
    """How a `digest run` cycle stands: running until it ends ok or failed."""

    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"


ACTIVE = SubscriberStatus.ACTIVE
PAUSED = SubscriberStatus.PAUSED
UNSUBSCRIBED = SubscriberStatus.UNSUBSCRIBED
SUBSCRIBER_STATUSES = tuple(SubscriberStatus)

PENDING = DeliveryStatus.PENDING
SENDING = DeliveryStatus.SENDING
SENT = DeliveryStatus.SENT
FAILED = DeliveryStatus.FAILED
SKIPPED = DeliveryStatus.SKIPPED
UNKNOWN = DeliveryStatus.UNKNOWN
DEFERRED = DeliveryStatus.DEFERRED
LISTED_STATUSES = (PENDING, DEFERRED, SENDING, SENT, FAILED, SKIPPED, UNKNOWN)
NEEDS_ATTENTION = (FAILED, DEFERRED, UNKNOWN)
