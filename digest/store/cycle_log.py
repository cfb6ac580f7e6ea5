"""The cycles area: the record of each `digest run` cycle (for the log and the scheduler's
catch-up), the failing-source streaks it gives, and the alerts sent about them."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection, func, insert, select, update

from digest.statuses import CycleStatus
from digest.store import schema as t
from digest.store.quiet import cycle_row
from digest.store.times import aware, naive_utc
from digest.text import plural

if TYPE_CHECKING:
    from digest.store import Store
    from digest.store.transaction import Transaction


class Sent(Protocol):
    """The counts of a send run the log keeps (mail.deliver.Summary)."""

    @property
    def sent(self) -> int: ...

    @property
    def failed(self) -> int: ...


class CycleReport(Protocol):
    """What the log needs of a cycle's report (pipeline.CycleReport): a protocol, so that the
    store does not import the pipeline above it."""

    @property
    def fetched(self) -> Mapping[str, int]: ...

    @property
    def failures(self) -> list[tuple[str, str]]: ...

    @property
    def notices(self) -> list[str]: ...

    @property
    def seconds(self) -> float: ...

    @property
    def sent(self) -> Sent | None: ...

    @property
    def new(self) -> int: ...

    @property
    def ok(self) -> bool: ...

    @property
    def succeeded(self) -> list[str]: ...


@dataclass(frozen=True)
class CycleRecord:
    """One cycle as recorded: when it started, how it ended, and what it noted."""

    id: int
    started_at: datetime
    status: CycleStatus
    new: int
    sent: int
    notices: tuple[str, ...]


class Cycles:
    """Cycles and operator alerts within one transaction."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def start(self, now: datetime) -> int:
        """Record a cycle as running; returns its id."""
        key = self.conn.execute(insert(t.cycles).values(
            started_at=naive_utc(now), status=CycleStatus.RUNNING, fetched=0, new=0, sent=0, failed=0,
            report="")).inserted_primary_key
        assert key is not None
        return int(key[0])

    def finish(self, cycle_id: int, report: CycleReport, now: datetime) -> None:
        """Record how the cycle ended."""
        sent = report.sent
        self.conn.execute(update(t.cycles).where(t.cycles.c.id == cycle_id).values(
            finished_at=naive_utc(now), **cycle_row(
                report.ok, fetched=sum(report.fetched.values()), new=report.new,
                sent=sent.sent if sent else 0,
                failed=len(report.failures) + (sent.failed if sent else 0),
                report={"failures": report.failures, "succeeded": report.succeeded,
                        "notices": report.notices, "seconds": round(report.seconds, 2)})))

    def seal(self, seal: str) -> None:
        """Write the quiet seal (this transaction began by deleting the last one)."""
        self.conn.execute(insert(t.quiet_seal).values(id=1, seal=seal))

    def failing_since(self, source: str) -> tuple[datetime, int] | None:
        """When the source's current run of failed cycles began, and how many cycles it has
        lasted; None when its last cycle went well. Cycles that did not run it do not count."""
        since, count = None, 0
        rows = self.conn.execute(select(t.cycles.c.started_at, t.cycles.c.report)
                                 .where(t.cycles.c.status != CycleStatus.RUNNING)
                                 .order_by(t.cycles.c.id.desc()))
        for started_at, raw in rows:
            report = _report(raw)
            if report is None:
                continue
            if source in report.get("succeeded", ()):
                break
            if any(name == source for name, *_ in report.get("failures", ())):
                since, count = started_at, count + 1
        return (aware(since), count) if since is not None else None

    def current_failures(self) -> list[tuple[str, datetime, int, str]]:
        """Every source whose last cycle failed: (source, failing since, cycles, last reason)."""
        latest: dict[str, str | None] = {}
        rows = self.conn.execute(select(t.cycles.c.report).where(t.cycles.c.status != CycleStatus.RUNNING)
                                 .order_by(t.cycles.c.id.desc()))
        for (raw,) in rows:
            report = _report(raw)
            if report is None:
                continue
            for name in report.get("succeeded", ()):
                latest.setdefault(name, None)
            for name, reason, *_ in report.get("failures", ()):
                latest.setdefault(name, reason)
        found = []
        for name, reason in latest.items():
            streak = self.failing_since(name) if reason is not None and name != "cycle" else None
            if streak is not None and reason is not None:
                found.append((name, streak[0], streak[1], reason))
        return found

    def last_completed(self) -> datetime | None:
        """When the last cycle that ran to its end (ok or failed) started."""
        started = self.conn.scalar(select(func.max(t.cycles.c.started_at))
                                   .where(t.cycles.c.status != CycleStatus.RUNNING))
        return aware(started) if started else None

    def history(self) -> list[CycleRecord]:
        """Every cycle recorded, oldest first."""
        rows = self.conn.execute(select(t.cycles).order_by(t.cycles.c.id))
        return [CycleRecord(id=row.id, started_at=aware(row.started_at),
                            status=CycleStatus(row.status), new=row.new, sent=row.sent,
                            notices=tuple((_report(row.report) or {}).get("notices", ())))
                for row in rows]

    def alerted(self, source: str, day: date) -> bool:
        """True when the operator was told about this source on `day`."""
        return self.conn.scalar(select(t.alerts.c.source).where(
            t.alerts.c.source == source, t.alerts.c.day == day)) is not None

    def record_alert(self, source: str, day: date, reason: str) -> None:
        """Note that the operator was told about this source on `day`."""
        self.conn.execute(insert(t.alerts).values(source=source, day=day, reason=reason[:1000]))


def _report(raw: str | None) -> dict[str, Any] | None:
    try:
        report = json.loads(raw or "{}")
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


def start(store: Store, now: datetime) -> int:
    """Record a cycle as running, in its own transaction; returns its id."""
    with store.transaction() as tx:
        return tx.cycles.start(now)


def finish(store: Store, cycle_id: int, report: CycleReport, now: datetime,
           seal: Callable[[Transaction], str | None] | None = None) -> None:
    """Record how the cycle ended, in its own transaction; with `seal`, also the quiet seal it
    returns, if any. It runs in that transaction, after its first statement took SQLite's
    write lock: no write can come between what it reads and the seal it writes."""
    with store.transaction() as tx:
        tx.cycles.finish(cycle_id, report, now)
        sealed = seal(tx) if seal is not None else None
        if sealed is not None:
            tx.cycles.seal(sealed)


def mark_streaks(store: Store, report: CycleReport, now: datetime) -> None:
    """Say how long each failing source has been failing; note each one that recovered."""
    with store.read() as tx:
        for index, (name, reason) in enumerate(report.failures):
            before = tx.cycles.failing_since(name)
            if before is not None:
                since, count = before
                report.failures[index] = (name, f"failing since {since:%Y-%m-%d}, {count + 1} "
                                          f"cycles: {reason}")
        for name in report.succeeded:
            before = tx.cycles.failing_since(name)
            if before is not None:
                since, count = before
                note = (f"{name}: recovered after {plural(count, 'failed cycle')} "
                        f"(failing since {since:%Y-%m-%d})")
                report.notices.append(note)  # logged with the cycle, printed, and in the scheduler's log


def current_failures(store: Store) -> list[tuple[str, datetime, int, str]]:
    """Every source whose last cycle failed: (source, failing since, cycles, last reason)."""
    with store.read() as tx:
        return tx.cycles.current_failures()


def last_completed(store: Store) -> datetime | None:
    """When the last cycle that ran to its end (ok or failed) started."""
    with store.read() as tx:
        return tx.cycles.last_completed()
