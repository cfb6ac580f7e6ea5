"""The quiet cycle's SQL (issue 12): read the seal, and record a steady cycle under it.

The only store module on the stdlib `sqlite3` rather than SQLAlchemy Core: a `digest run`
that finds nothing new is a cron job's whole cost, and importing SQLAlchemy alone takes
longer than rss2email's whole steady run. So this module writes exactly the rows a full
steady cycle writes (its cycle record, a 304 row per http source), inside one BEGIN
IMMEDIATE that first checks the seal is still the one the checks were made against: any
other transaction deletes the seal first thing (Store.transaction), so a write between the
check and the record makes this decline, and the full path runs. SQLite only; every other
cycle, and every other write, goes through SQLAlchemy.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

# The schema this code writes to: the last migration's number (a test holds it to
# schema.MIGRATIONS). A seal of another version, or a store at another, is not trusted.
SCHEMA_VERSION = 6


@dataclass(frozen=True)
class Seal:
    """The seal as stored, and the store's schema version when it was read."""

    text: str
    schema: int


@dataclass(frozen=True)
class NotModified:
    """A 304 to be recorded as the full path records it (sources.fetch, store.fetches)."""

    source: str
    url: str
    etag: str | None
    last_modified: str | None


def cycle_row(ok: bool, fetched: int, new: int, sent: int, failed: int, report: dict[str, object]
              ) -> dict[str, object]:
    """A finished cycle's values as cycles.finish stores them (shared by both paths)."""
    return {"status": "ok" if ok else "failed", "fetched": fetched, "new": new, "sent": sent,
            "failed": failed, "report": json.dumps(report)}


def stored_time(moment: datetime) -> str:
    """A naive UTC time as SQLAlchemy's SQLite DateTime stores it."""
    return moment.isoformat(sep=" ", timespec="microseconds")


def read_seal(database: Path) -> Seal | None:
    """The seal and the store's schema version, read-only; None when there is none (or no
    store, or it cannot be read: the full path says why)."""
    try:
        conn = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
    except (sqlite3.Error, OSError, ValueError):
        return None
    try:
        conn.execute("PRAGMA busy_timeout=10000")
        version = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
        row = conn.execute("SELECT seal FROM quiet_seal WHERE id = 1").fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return Seal(row[0], int(version)) if row is not None and version is not None else None


def record(database: Path, seal: str, now: datetime, cycle: dict[str, object],
           not_modified: Sequence[NotModified]) -> bool:
    """Record a quiet cycle (its 304s, then its finished cycle) if the seal is still `seal`;
    False, with nothing written, when any other transaction came first or SQLite refused
    (locked past its wait, a full disk: the full path meets it again and says so)."""
    try:
        return _record(database, seal, now, cycle, not_modified)
    except sqlite3.Error:
        return False


def _record(database: Path, seal: str, now: datetime, cycle: dict[str, object],
            not_modified: Sequence[NotModified]) -> bool:
    conn = sqlite3.connect(database, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT seal FROM quiet_seal WHERE id = 1").fetchone()
            if row is None or row[0] != seal:
                conn.execute("ROLLBACK")
                return False
            at = stored_time(now)
            # In the full path's order: the cycle starts, its fetches are kept, it finishes.
            conn.execute(
                "INSERT INTO cycles (started_at, finished_at, status, fetched, new, sent, failed,"
                " report) VALUES (:at, :at, :status, :fetched, :new, :sent, :failed, :report)",
                {"at": at, **cycle})
            conn.executemany(
                "INSERT INTO fetches (source, url, fetched_at, status, etag, last_modified,"
                " content_type, sha256, body_gzip) VALUES (?, ?, ?, 304, ?, ?, '', NULL, NULL)",
                [(n.source, n.url, at, n.etag, n.last_modified) for n in not_modified])
            conn.execute("COMMIT")
            return True
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()
