"""The record of each `digest run` cycle, for the log and for the scheduler's catch-up."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, insert, select, update

from digest.store import Store, aware, naive_utc
from digest.store import schema as t

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
            report=json.dumps({"failures": report.failures, "succeeded": report.succeeded,
                               "notices": report.notices, "seconds": round(report.seconds, 2)})))


def failing_since(store: Store, source: str) -> tuple[datetime, int] | None:
    """When the source's current run of failed cycles began, and how many cycles it has
    lasted; None when its last cycle went well. Cycles that did not run it do not count."""
    since, count = None, 0
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.cycles.c.started_at, t.cycles.c.report)
                            .where(t.cycles.c.status != "running").order_by(t.cycles.c.id.desc()))
        for started_at, raw in rows:
            try:
                report = json.loads(raw or "{}")
            except ValueError:
                continue
            if source in report.get("succeeded", ()):
                break
            if any(name == source for name, *_ in report.get("failures", ())):
                since, count = started_at, count + 1
    return (aware(since), count) if since is not None else None


def mark_streaks(store: Store, report: CycleReport, now: datetime) -> None:
    """Say how long each failing source has been failing; note each one that recovered."""
    for index, (name, reason) in enumerate(report.failures):
        before = failing_since(store, name)
        if before is not None:
            since, count = before
            report.failures[index] = (name, f"failing since {since:%Y-%m-%d}, {count + 1} "
                                      f"cycles: {reason}")
    for name in report.succeeded:
        before = failing_since(store, name)
        if before is not None:
            since, count = before
            note = (f"{name}: recovered after {count} failed cycle{'s' if count != 1 else ''} "
                    f"(failing since {since:%Y-%m-%d})")
            report.notices.append(note)  # logged with the cycle, printed, and in the scheduler's log


def current_failures(store: Store) -> list[tuple[str, datetime, int, str]]:
    """Every source whose last cycle failed: (source, failing since, cycles, last reason)."""
    latest: dict[str, str | None] = {}
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.cycles.c.report).where(t.cycles.c.status != "running")
                            .order_by(t.cycles.c.id.desc()))
        for (raw,) in rows:
            try:
                report = json.loads(raw or "{}")
            except ValueError:
                continue
            for name in report.get("succeeded", ()):
                latest.setdefault(name, None)
            for name, reason, *_ in report.get("failures", ()):
                latest.setdefault(name, reason)
    found = []
    for name, reason in latest.items():
        streak = failing_since(store, name) if reason is not None and name != "cycle" else None
        if streak is not None and reason is not None:
            found.append((name, streak[0], streak[1], reason))
    return found


def last_completed(store: Store) -> datetime | None:
    """When the last cycle that ran to its end (ok or failed) started."""
    with store.engine.connect() as conn:
        started = conn.scalar(select(func.max(t.cycles.c.started_at))
                              .where(t.cycles.c.status != "running"))
    return aware(started) if started else None
