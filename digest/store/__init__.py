"""The store: snapshots, papers, sightings and digests in SQLite or PostgreSQL.

Every ingest runs in one transaction, so a failure leaves the store exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from digest.errors import StoreError
from digest.models import (
    DigestInfo,
    IngestResult,
    Paper,
    Snapshot,
    StoredPaper,
    ident_of,
)
from digest.store import schema as t
from digest.store.ingest import record
from digest.store.times import aware as aware
from digest.store.times import naive_utc as naive_utc

DEFAULT_URL = "sqlite:///digest.sqlite3"
DEFAULT_MAX_NEW = 300
# Bound parameters per IN (...) lookup; SQLite allows 32,766, PostgreSQL 65,535.
# Called inside the ingest transaction, before the commit, with its results and papers.
Prepare = Callable[[list[IngestResult], list[StoredPaper]], None]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL with a sync per commit: each delivery is recorded durably (a sent mark must
    # survive a power cut, or the message goes out twice), at a quarter of the cost of a
    # rollback-journal commit; and readers (the web app) never wait for a writer.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB: index pages of a big store stay hot
    cursor.close()


class Store:
    """A migrated database behind a SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    # -- ingest ---------------------------------------------------------------------------

    def find_snapshot(self, sha256: str) -> IngestResult | None:
        """Return the earlier ingest of these exact bytes, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.snapshots).where(t.snapshots.c.sha256 == sha256)).first()
            if row is None:
                return None
            digest = conn.execute(
                select(t.digests).where(t.digests.c.snapshot_id == row.id)
            ).first()
        return IngestResult(
            path=row.path, captured_at=aware(row.captured_at), papers=row.paper_count,
            new=row.new_count, digest=_digest_info(digest) if digest else None,
            status="already ingested",
        )

    def newest_capture(self) -> datetime | None:
        """Return the capture time of the newest snapshot stored."""
        with self.engine.connect() as conn:
            newest = conn.scalar(select(func.max(t.snapshots.c.captured_at)))
        return aware(newest) if newest else None

    def ingest(self, snapshot: Snapshot, *, baseline: bool = False, now: datetime | None = None,
               max_new: int = DEFAULT_MAX_NEW, prepare: Prepare | None = None,
               ) -> tuple[IngestResult, list[StoredPaper]]:
        """Record one snapshot (see `ingest_cycle`); returns its result and digest papers."""
        results, published = self.ingest_cycle([snapshot], baseline=baseline, now=now,
                                               max_new=max_new, prepare=prepare)
        return results[0], published

    def ingest_cycle(self, snapshots: Sequence[Snapshot], *, baseline: bool = False,
                     now: datetime | None = None, max_new: int = DEFAULT_MAX_NEW,
                     prepare: Prepare | None = None,
                     ) -> tuple[list[IngestResult], list[StoredPaper]]:
        """Record snapshots, their sightings and their new papers in one transaction, and
        make one digest of all the new papers (grouped by snapshot, each paper once).

        `prepare(results, papers)` runs just before the commit (the caller renders the
        outputs there): if it raises, nothing is committed. Returns a result per snapshot
        and the digest's papers as stored (empty without a digest), so the caller can
        render them without reading them back.
        """
        with self.engine.begin() as conn:
            results, published = record(conn, snapshots, baseline, now or datetime.now(UTC),
                                        max_new)
            if prepare is not None:
                prepare(results, published)
            return results, published

    # -- reading ----------------------------------------------------------------------------

    def digests(self) -> list[DigestInfo]:
        """Return every digest, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.digests).order_by(t.digests.c.id.desc()))
            return [_digest_info(row) for row in rows]

    def digest(self, name: str) -> DigestInfo | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.digests).where(t.digests.c.name == name)).first()
        return _digest_info(row) if row else None

    def digest_papers(self, name: str) -> list[StoredPaper]:
        """Return a digest's papers in page order, as they were first seen."""
        query = _published_papers().where(t.digests.c.name == name).order_by(
            t.papers.c.digest_position)
        with self.engine.connect() as conn:
            return [_stored_paper(row) for row in conn.execute(query)]

    def feed_papers(self, limit: int) -> list[StoredPaper]:
        """Return the latest `limit` published papers, newest digest first, page order within.

        Reads the newest digests first, each in page order up to what is still wanted, so
        the cost follows `limit`, not the store's size nor the size of a 50,000-paper day.
        """
        papers: list[StoredPaper] = []
        with self.engine.connect() as conn:
            for (digest_id,) in conn.execute(select(t.digests.c.id).order_by(t.digests.c.id.desc())):
                if len(papers) >= limit:
                    break
                # The page's first ids by the digest index, then the joins for those alone
                # (a join first made PostgreSQL read all 50,000 papers of a big day).
                first = (select(t.papers.c.id).where(t.papers.c.digest_id == digest_id)
                         .order_by(t.papers.c.digest_position).limit(limit - len(papers)))
                query = (_published_papers().where(t.papers.c.id.in_(first))
                         .order_by(t.papers.c.digest_position))
                papers += [_stored_paper(row) for row in conn.execute(query)]
        return papers

    def paper_history(self, key: str) -> tuple[StoredPaper, list[dict[str, Any]]] | None:
        """A paper by its key, with every sighting (time, source, rank, comments, upvotes)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.papers, t.digests.c.name.label("digest_name"))
                .select_from(t.papers.outerjoin(t.digests, t.digests.c.id == t.papers.c.digest_id))
                .where(t.papers.c.key == key)).first()
            if row is None:
                return None
            seen = [dict(r._mapping) for r in conn.execute(
                select(t.snapshots.c.captured_at, t.snapshots.c.source, t.sightings.c.rank,
                       t.sightings.c.comments, t.sightings.c.upvotes)
                .join(t.snapshots, t.snapshots.c.id == t.sightings.c.snapshot_id)
                .where(t.sightings.c.paper_id == row.id)
                .order_by(t.snapshots.c.captured_at, t.snapshots.c.id))]
        last = seen[-1] if seen else {}
        paper = Paper(
            title=row.title, abstract=row.abstract, rank=last.get("rank", 0),
            published=row.published, org_handle=row.org_handle, org_name=row.org_name,
            author_count=row.author_count, comments=last.get("comments"),
            upvotes=last.get("upvotes"),
            links=tuple(row.links.split("\n")) if row.links else (), arxiv_id=row.arxiv_id,
            authors=tuple(row.authors.split("\n")) if row.authors else (), page_url=row.page_url,
        ident=ident_of(row.key),
        )
        stored = StoredPaper(key=row.key, paper=paper, first_seen=aware(row.first_seen_at),
                             digest=row.digest_name, position=row.digest_position or 0)
        return stored, seen

    def history(self) -> list[dict[str, Any]]:
        """Return every snapshot, oldest first, with its counts and digest name."""
        query = (
            select(t.snapshots, t.digests.c.name.label("digest"))
            .select_from(t.snapshots.outerjoin(t.digests, t.digests.c.snapshot_id == t.snapshots.c.id))
            .order_by(t.snapshots.c.captured_at, t.snapshots.c.id)
        )
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def counts(self) -> dict[str, int]:
        """Return the number of rows in each table (for status lines and tests)."""
        with self.engine.connect() as conn:
            return {
                table.name: conn.scalar(select(func.count()).select_from(table)) or 0
                for table in (t.snapshots, t.papers, t.sightings, t.digests)
            }


def open_store(url: str, create: bool = True) -> Store:
    """Connect to the store at `url` and bring its schema up to date (with `create` false,
    a SQLite store that does not exist yet is an error, not a new empty file)."""
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                folder = Path(parsed.database).expanduser().resolve().parent
                if not folder.is_dir():
                    raise StoreError(url, f"folder {folder} does not exist",
                                     "create it or choose another --db path")
                if not create and not Path(parsed.database).expanduser().is_file():
                    raise StoreError(url, "no store here yet",
                                     "run digest ingest or digest run first, or point --db at "
                                     "the store")
        engine = create_engine(parsed)
    except (ArgumentError, ValueError):
        raise StoreError(url, "not a database URL",
                         "use sqlite:///digest.sqlite3 or postgresql+psycopg://user@host/db") from None
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise StoreError(url, f"no driver for this URL ({exc})",
                         "use sqlite:/// or postgresql+psycopg:// and pip install 'paper-digest[postgres]'"
                         ) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    elif engine.dialect.name != "postgresql":
        raise StoreError(url, f"unsupported database {engine.dialect.name!r}",
                         "use sqlite:/// or postgresql+psycopg://")
    try:
        with engine.begin() as conn:
            t.migrate(conn)
    except OperationalError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise StoreError(url, f"cannot open the store ({reason})",
                         "check the --db URL / DIGEST_DB and that the server is running") from None
    return Store(engine)


def _published_papers() -> Any:
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


def _stored_paper(row: Any) -> StoredPaper:
    paper = Paper(
        title=row.title, abstract=row.abstract, rank=row.rank,
        published=row.published, org_handle=row.org_handle, org_name=row.org_name,
        author_count=row.author_count, comments=row.comments, upvotes=row.upvotes,
        links=tuple(row.links.split("\n")) if row.links else (), arxiv_id=row.arxiv_id,
        authors=tuple(row.authors.split("\n")) if row.authors else (), page_url=row.page_url,
        ident=ident_of(row.key),
    )
    return StoredPaper(key=row.key, paper=paper, first_seen=aware(row.first_seen_at),
                       digest=row.digest_name, position=row.digest_position, source=row.source)


def _digest_info(row: Any) -> DigestInfo:
    return DigestInfo(name=row.name, captured_at=aware(row.captured_at),
                      paper_count=row.paper_count, held_reason=row.held_reason)

