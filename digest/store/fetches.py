"""The raw fetches of http sources, kept (gzip) before parsing so a fetch that never reached
the store is ingested from its stored body on the next run instead of being lost."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, insert, select

from digest.store import schema as t
from digest.store.times import aware, naive_utc

if TYPE_CHECKING:
    from digest.sources.fetch import Fetched
    from digest.store import Store


@dataclass(frozen=True)
class StoredFetch:
    """A source's last full fetch, and whether its bytes were ever ingested."""

    fetched_at: datetime
    etag: str | None
    last_modified: str | None
    content_type: str
    sha256: str
    body: bytes | None  # loaded only when never ingested: it is needed then, and only then
    ingested: bool  # a snapshot of these exact bytes is in the store


class Fetches:
    """Fetches within one transaction."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def last(self, source: str) -> StoredFetch | None:
        """The source's latest fetch that brought a body (a 304 brings none)."""
        row = self.conn.execute(
            select(t.fetches.c.fetched_at, t.fetches.c.etag, t.fetches.c.last_modified,
                   t.fetches.c.content_type, t.fetches.c.sha256, t.fetches.c.id)
            .where(t.fetches.c.source == source, t.fetches.c.status != 304)
            .order_by(t.fetches.c.id.desc()).limit(1)).first()
        if row is None or row.sha256 is None:
            return None
        ingested = self.conn.scalar(select(t.snapshots.c.id)
                                    .where(t.snapshots.c.sha256 == row.sha256))
        body = None if ingested else gzip.decompress(
            self.conn.scalar(select(t.fetches.c.body_gzip).where(t.fetches.c.id == row.id))
            or b"")
        return StoredFetch(fetched_at=aware(row.fetched_at), etag=row.etag,
                           last_modified=row.last_modified, content_type=row.content_type or "",
                           sha256=row.sha256, body=body, ingested=ingested is not None)

    def statuses(self, source: str) -> list[int]:
        """The HTTP status of each of the source's fetches, oldest first."""
        return list(self.conn.scalars(select(t.fetches.c.status)
                                      .where(t.fetches.c.source == source)
                                      .order_by(t.fetches.c.id)))

    def record(self, source: str, url: str, now: datetime, got: Fetched) -> str | None:
        """Keep one fetch, raw; return its body's sha256 (None for a 304)."""
        sha = hashlib.sha256(got.body).hexdigest() if got.status != 304 else None
        self.conn.execute(insert(t.fetches).values(
            source=source, url=url, fetched_at=naive_utc(now), status=got.status,
            etag=got.etag, last_modified=got.last_modified, content_type=got.content_type,
            sha256=sha, body_gzip=gzip.compress(got.body) if got.status != 304 else None))
        return sha


def last_fetch(store: Store, source: str) -> StoredFetch | None:
    """The source's latest fetch that brought a body (a 304 brings none)."""
    with store.read() as tx:
        return tx.fetches.last(source)


def record_fetch(store: Store, source: str, url: str, now: datetime, got: Fetched) -> str | None:
    """Keep one fetch, raw, in its own transaction, committed before the body is parsed: a
    body that fails to parse, or a run killed before its ingest, is still there for the next
    run. Returns its body's sha256 (None for a 304)."""
    with store.transaction() as tx:
        return tx.fetches.record(source, url, now, got)
