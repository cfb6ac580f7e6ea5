"""The record of each `digest run` cycle, for the log and for the scheduler's catch-up."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, insert, select, update

from digest import schema as t
from digest.store import Store, aware, naive_utc

if TYPE_CHECKING:
    from digest.pipeline import CycleReport


def start(store: Store, now: datetime) -> int:
    with store.engine.begin() as conn:
        key = conn.execute(insert(t.cycles).values(
            started_at=naive_utc(now), status="running", fetched=0, new=0, sent=0, failed=0,
            report="")).inserted_primary_key
    assert key is not None
    return int(key[0])


def finish(store: Store, cycle_id: int, report: CycleReport, now: datetime) -> None:
    sent = report.sent
    with store.engine.begin() as conn:
        conn.execute(update(t.cycles).where(t.cycles.c.id == cycle_id).values(
            finished_at=naive_utc(now), status="ok" if report.ok else "failed",
            fetched=sum(report.fetched.values()), new=report.new,
            sent=sent.sent if sent else 0, failed=len(report.failures) + (sent.failed if sent else 0),
            report=json.dumps({"failures": report.failures, "seconds": round(report.seconds, 2)})))


def last_completed(store: Store) -> datetime | None:
    """When the last cycle that ran to its end (ok or failed) started."""
    with store.engine.connect() as conn:
        started = conn.scalar(select(func.max(t.cycles.c.started_at))
                              .where(t.cycles.c.status != "running"))
    return aware(started) if started else None
