"""Times in the store: naive UTC on every backend, aware everywhere else."""

from __future__ import annotations

from datetime import UTC, datetime


def naive_utc(moment: datetime) -> datetime:
    """Drop the zone after converting to UTC: the store keeps naive UTC on every backend."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def aware(moment: datetime) -> datetime:
    """Read a stored naive UTC time back as an aware one."""
    return moment.replace(tzinfo=UTC)
