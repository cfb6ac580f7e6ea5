"""The papers area: snapshots, papers, sightings and digests, read and ingested through one
connection (the caller's transaction)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, func, select, update

from digest.models import (
    DigestInfo,
    IngestResult,
    Paper,
    Sighting,
    Snapshot,
    SnapshotRecord,
    StoredPaper,
    ident_of,
)
from digest.store import schema as t
from digest.store.ingest import Prepare, record, with_key
from digest.store.times import aware


class Papers:
    """Snapshots, papers and digests within one transaction."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def ingest(self, snapshots: Sequence[Snapshot], *, baseline: bool, now: datetime,
               max_new: int, prepare: Prepare | None = None,
               ) -> tuple[list[IngestResult], list[StoredPaper]]:
        """Record snapshots as one cycle (one digest of the new papers); see `Store.ingest_cycle`."""
        return record(self.conn, snapshots, baseline, now, max_new, prepare)

    def find_snapshot(self, sha256: str) -> IngestResult | None:
        """Return the earlier ingest of these exact bytes, if any."""
        row = self.conn.execute(select(t.snapshots).where(t.snapshots.c.sha256 == sha256)).first()
        if row is None:
            return None
        digest = self.conn.execute(
            select(t.digests).where(t.digests.c.snapshot_id == row.id)).first()
        return IngestResult(
            path=row.path, captured_at=aware(row.captured_at), papers=row.paper_count,
            new=row.new_count, digest=_digest_info(digest) if digest else None,
            status="already ingested",
        )

    def newest_capture(self) -> datetime | None:
        """Return the capture time of the newest snapshot stored."""
        newest = self.conn.scalar(select(func.max(t.snapshots.c.captured_at)))
        return aware(newest) if newest else None

    def digests(self) -> list[DigestInfo]:
        """Return every digest, newest first."""
        rows = self.conn.execute(select(t.digests).order_by(t.digests.c.id.desc()))
        return [_digest_info(row) for row in rows]

    def digest(self, name: str) -> DigestInfo | None:
        """Return the digest of this name, if any."""
        row = self.conn.execute(select(t.digests).where(t.digests.c.name == name)).first()
        return _digest_info(row) if row else None

    def digest_papers(self, name: str) -> list[StoredPaper]:
        """Return a digest's papers in page order, as they were first seen."""
        query = _published_papers().where(t.digests.c.name == name).order_by(
            t.papers.c.digest_position)
        return [_stored_paper(row) for row in self.conn.execute(query)]

    def feed_papers(self, limit: int) -> list[StoredPaper]:
        """Return the latest `limit` published papers, newest digest first, page order within.

        Reads the newest digests first, each in page order up to what is still wanted, so
        the cost follows `limit`, not the store's size nor the size of a 50,000-paper day.
        """
        papers: list[StoredPaper] = []
        digest_ids = self.conn.execute(select(t.digests.c.id).order_by(t.digests.c.id.desc()))
        for (digest_id,) in digest_ids:
            if len(papers) >= limit:
                break
            # The page's first ids by the digest index, then the joins for those alone
            # (a join first made PostgreSQL read all 50,000 papers of a big day).
            first = (select(t.papers.c.id).where(t.papers.c.digest_id == digest_id)
                     .order_by(t.papers.c.digest_position).limit(limit - len(papers)))
            query = (_published_papers().where(t.papers.c.id.in_(first))
                     .order_by(t.papers.c.digest_position))
            papers += [_stored_paper(row) for row in self.conn.execute(query)]
        return papers

    def paper_history(self, key: str) -> tuple[StoredPaper, list[Sighting]] | None:
        """A paper by its key, with every sighting, oldest first."""
        row = self.conn.execute(
            select(t.papers, t.digests.c.name.label("digest_name"))
            .select_from(t.papers.outerjoin(t.digests, t.digests.c.id == t.papers.c.digest_id))
            .where(with_key(key))).first()
        if row is None:
            return None
        seen = [Sighting(captured_at=aware(r.captured_at), source=r.source, rank=r.rank,
                         comments=r.comments, upvotes=r.upvotes)
                for r in self.conn.execute(
                    select(t.snapshots.c.captured_at, t.snapshots.c.source, t.sightings.c.rank,
                           t.sightings.c.comments, t.sightings.c.upvotes)
                    .join(t.snapshots, t.snapshots.c.id == t.sightings.c.snapshot_id)
                    .where(t.sightings.c.paper_id == row.id)
                    .order_by(t.snapshots.c.captured_at, t.snapshots.c.id))]
        last = seen[-1] if seen else None
        stored = StoredPaper(key=row.key, paper=_paper(row), first_seen=aware(row.first_seen_at),
                             digest=row.digest_name, position=row.digest_position or 0,
                             rank=last.rank if last else 0,
                             comments=last.comments if last else None,
                             upvotes=last.upvotes if last else None)
        return stored, seen

    def history(self) -> list[SnapshotRecord]:
        """Return every snapshot, oldest first, with its counts and digest name.

        A digest names one snapshot of its cycle; another snapshot of the same cycle (a
        second source) is credited with the digest its new papers went into.
        """
        query = (
            select(t.snapshots, t.digests.c.name.label("digest"))
            .select_from(t.snapshots.outerjoin(t.digests,
                                               t.digests.c.snapshot_id == t.snapshots.c.id))
            .order_by(t.snapshots.c.captured_at, t.snapshots.c.id)
        )
        records = []
        for row in self.conn.execute(query).all():
            digest = row.digest
            if digest is None and row.new_count and not row.baseline:
                digest = self._digest_of_new_papers(row.id)
            records.append(SnapshotRecord(
                id=row.id, path=row.path, source=row.source, sha256=row.sha256,
                captured_at=aware(row.captured_at), ingested_at=aware(row.ingested_at),
                paper_count=row.paper_count, new_count=row.new_count,
                baseline=bool(row.baseline), digest=digest))
        return records

    def _digest_of_new_papers(self, snapshot_id: int) -> str | None:
        """The digest that took the papers first seen in this snapshot (by its sightings)."""
        first_seen_here = (t.papers.c.id == t.sightings.c.paper_id) & (
            t.papers.c.first_snapshot_id == t.sightings.c.snapshot_id)
        return self.conn.scalar(
            select(t.digests.c.name)
            .select_from(t.sightings.join(t.papers, first_seen_here)
                         .join(t.digests, t.digests.c.id == t.papers.c.digest_id))
            .where(t.sightings.c.snapshot_id == snapshot_id).limit(1))

    def counts(self) -> dict[str, int]:
        """Return the number of rows in each table (for status lines and tests)."""
        return {
            table.name: self.conn.scalar(select(func.count()).select_from(table)) or 0
            for table in (t.snapshots, t.papers, t.sightings, t.digests)
        }

    def release_digest(self, name: str) -> bool:
        """Lift the flood guard's hold on a digest; False when no such digest is held."""
        done = self.conn.execute(update(t.digests).where(
            t.digests.c.name == name, t.digests.c.held_reason.is_not(None)
        ).values(held_reason=None))
        return done.rowcount == 1


def _published_papers() -> Select[Any]:
    first_sighting = (t.sightings.c.paper_id == t.papers.c.id) & (
        t.sightings.c.snapshot_id == t.papers.c.first_snapshot_id)
    return select(
        t.papers, t.digests.c.name.label("digest_name"),
        t.sightings.c.rank, t.sightings.c.comments, t.sightings.c.upvotes, t.snapshots.c.source,
    ).select_from(
        t.papers.join(t.digests, t.digests.c.id == t.papers.c.digest_id)
        .join(t.sightings, first_sighting)
        .join(t.snapshots, t.snapshots.c.id == t.papers.c.first_snapshot_id)
    )


def _paper(row: Any) -> Paper:
    return Paper(
        title=row.title, abstract=row.abstract,
        published=row.published, org_handle=row.org_handle, org_name=row.org_name,
        author_count=row.author_count,
        links=tuple(row.links.split("\n")) if row.links else (), arxiv_id=row.arxiv_id,
        authors=tuple(row.authors.split("\n")) if row.authors else (), page_url=row.page_url,
        ident=ident_of(row.key),
    )


def _stored_paper(row: Any) -> StoredPaper:
    return StoredPaper(key=row.key, paper=_paper(row), first_seen=aware(row.first_seen_at),
                       digest=row.digest_name, position=row.digest_position, source=row.source,
                       rank=row.rank, comments=row.comments, upvotes=row.upvotes)


def _digest_info(row: Any) -> DigestInfo:
    return DigestInfo(name=row.name, captured_at=aware(row.captured_at),
                      paper_count=row.paper_count, held_reason=row.held_reason)
