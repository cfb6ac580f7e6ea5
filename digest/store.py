"""The store: snapshots, papers, sightings and digests in SQLite or PostgreSQL.

Every ingest runs in one transaction, so a failure leaves the store exactly as it was.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Insert,
    Table,
    create_engine,
    event,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from digest import schema as t
from digest.diff import split_new, unique_papers
from digest.errors import StoreError
from digest.models import (
    ARXIV_PREFIX,
    TITLE_PREFIX,
    DigestInfo,
    IngestResult,
    Paper,
    Snapshot,
    StoredPaper,
)

DEFAULT_URL = "sqlite:///digest.sqlite3"
DEFAULT_MAX_NEW = 300
FLOOD_SHARE = 0.8
FLOOD_WINDOW = timedelta(hours=48)
# Bound parameters per IN (...) lookup; SQLite allows 32,766, PostgreSQL 65,535.
_CHUNK = 5000


def naive_utc(moment: datetime) -> datetime:
    """Drop the zone after converting to UTC: the store keeps naive UTC on every backend."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def aware(moment: datetime) -> datetime:
    """Read a stored naive UTC time back as an aware one."""
    return moment.replace(tzinfo=UTC)


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
               max_new: int = DEFAULT_MAX_NEW) -> tuple[IngestResult, list[StoredPaper]]:
        """Record a snapshot, its sightings and its new papers; make a digest of the new ones.

        Returns the result and the digest's papers as stored (empty without a digest), so
        the caller can render them without reading them back.
        """
        with self.engine.begin() as conn:
            return self._ingest(conn, snapshot, baseline, now or datetime.now(UTC), max_new)

    def _ingest(self, conn: Connection, snapshot: Snapshot, baseline: bool,
                now: datetime, max_new: int) -> tuple[IngestResult, list[StoredPaper]]:
        if conn.scalar(select(t.snapshots.c.id).where(t.snapshots.c.sha256 == snapshot.sha256)):
            raise StoreError(snapshot.path, "already ingested", "")
        captured = naive_utc(snapshot.captured_at)
        newest = conn.scalar(select(func.max(t.snapshots.c.captured_at)))
        if newest is not None and captured < newest:
            raise StoreError(
                snapshot.path,
                f"captured {captured:%Y-%m-%d %H:%M} but the store already holds a snapshot "
                f"from {newest:%Y-%m-%d %H:%M}; snapshots must be ingested in capture order",
                "ingest it into a fresh store, or check its --captured-at date",
            )
        page = unique_papers(snapshot.papers)
        known = _known_identities(conn, page)
        new, seen = split_new(page, known)
        previous = conn.scalar(select(func.max(t.snapshots.c.captured_at))
                               .where(t.snapshots.c.source == snapshot.source))
        snapshot_id = _insert_id(conn, insert(t.snapshots).values(
            sha256=snapshot.sha256, source=snapshot.source, path=snapshot.path,
            captured_at=captured, ingested_at=naive_utc(now), paper_count=len(page),
            new_count=len(new), baseline=baseline,
        ))

        digest = None
        if new and not baseline:
            name = _free_digest_name(conn, captured.date().isoformat())
            held = flood_reason(len(new), len(page), captured - previous if previous else None,
                                max_new)
            digest_id = _insert_id(conn, insert(t.digests).values(
                name=name, snapshot_id=snapshot_id, captured_at=captured, paper_count=len(new),
                held_reason=held,
            ))
            digest = DigestInfo(name=name, captured_at=aware(captured), paper_count=len(new),
                                held_reason=held)
            # Planned with the digest, for the subscribers active now: a backfill of old
            # snapshots never floods someone who subscribed today.
            conn.execute(insert(t.deliveries).from_select(
                ["digest_id", "subscriber_id", "status", "attempts"],
                select(literal(digest_id), t.subscribers.c.id, literal("pending"), literal(0))
                .where(t.subscribers.c.status == "active"),
            ))
        else:
            digest_id = None

        if new:
            # A plain executemany, then one primary-key range read of the new ids: far
            # faster than INSERT ... RETURNING, which SQLite runs row by row to keep order.
            before = conn.scalar(select(func.max(t.papers.c.id))) or 0
            bulk_insert(conn, t.papers, [_paper_row(p, snapshot_id, captured, digest_id, pos)
                                         for pos, p in enumerate(new, 1)])
            ids = {key: pid for key, pid in conn.execute(
                select(t.papers.c.key, t.papers.c.id).where(t.papers.c.id > before))}
            seen = [(p, ids[p.key]) for p in new] + seen
        if seen:
            bulk_insert(conn, t.sightings, [
                {"snapshot_id": snapshot_id, "paper_id": pid, "rank": p.rank,
                 "comments": p.comments, "upvotes": p.upvotes} for p, pid in seen])
        result = IngestResult(path=snapshot.path, captured_at=aware(captured), papers=len(page),
                              new=len(new), digest=digest, status="ingested")
        published = [
            StoredPaper(key=p.key, paper=p, first_seen=aware(captured), digest=digest.name,
                        position=pos)
            for pos, p in enumerate(new, 1)
        ] if digest else []
        return result, published

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

        Picks the newest digests first, so the cost follows `limit`, not the store's size.
        """
        with self.engine.connect() as conn:
            chosen: list[int] = []
            total = 0
            for digest_id, count in conn.execute(
                select(t.digests.c.id, t.digests.c.paper_count).order_by(t.digests.c.id.desc())
            ):
                chosen.append(digest_id)
                total += count
                if total >= limit:
                    break
            if not chosen:
                return []
            query = (_published_papers().where(t.papers.c.digest_id.in_(chosen))
                     .order_by(t.papers.c.digest_id.desc(), t.papers.c.digest_position).limit(limit))
            return [_stored_paper(row) for row in conn.execute(query)]

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


def open_store(url: str) -> Store:
    """Connect to the store at `url` and bring its schema up to date."""
    try:
        parsed = make_url(url)
        kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                folder = Path(parsed.database).expanduser().resolve().parent
                if not folder.is_dir():
                    raise StoreError(url, f"folder {folder} does not exist",
                                     "create it or choose another --db path")
        engine = create_engine(parsed, **kwargs)
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


def _known_identities(conn: Connection, page: Sequence[Paper]) -> dict[str, int]:
    """Map each identity (arXiv key, title key) of `page` already in the store to its paper id."""
    known: dict[str, int] = {}
    title_keys = [p.title_key for p in page]
    arxiv_ids = [p.arxiv_id for p in page if p.arxiv_id]
    for chunk in _chunks(title_keys):
        for pid, title_key in conn.execute(
            select(t.papers.c.id, t.papers.c.title_key).where(t.papers.c.title_key.in_(chunk))
        ):
            known.setdefault(TITLE_PREFIX + title_key, pid)
    for chunk in _chunks(arxiv_ids):
        for pid, arxiv_id in conn.execute(
            select(t.papers.c.id, t.papers.c.arxiv_id).where(t.papers.c.arxiv_id.in_(chunk))
        ):
            known[ARXIV_PREFIX + arxiv_id] = pid
    return known


def flood_reason(new: int, page: int, since_previous: timedelta | None, max_new: int) -> str | None:
    """Why a digest looks like a flood (held back from email), or None when it looks normal.

    Too many new papers, or most of a page new although the previous snapshot of the same
    source is recent: typically the source changed its format and every title looks new.
    """
    if new > max_new:
        return f"{new} new papers is more than max_new ({max_new})"
    if page and new > FLOOD_SHARE * page and since_previous is not None and since_previous < FLOOD_WINDOW:
        hours = since_previous.total_seconds() / 3600
        return (f"{new} of {page} papers ({new / page:.0%}) are new although the previous snapshot "
                f"is only {hours:.0f} hours older; did the source change its format?")
    return None


def _insert_id(conn: Connection, statement: Insert) -> int:
    """Run a single-row insert and return the new row's id."""
    key = conn.execute(statement).inserted_primary_key
    assert key is not None
    return int(key[0])


def bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows at once. Same as `conn.execute(insert(table), rows)`, but on SQLite
    the per-row parameter processing of SQLAlchemy (half the cost of a 50,000-paper ingest)
    is done here once per column, and the rows go to the driver's executemany as tuples."""
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(insert(table), rows)  # PostgreSQL: insertmanyvalues batches already
        return
    names = list(rows[0])
    columns = [table.c[name] for name in names]
    processors = [col.type._cached_bind_processor(conn.dialect) for col in columns]
    statement = (f"INSERT INTO {table.name} ({', '.join(names)}) "
                 f"VALUES ({', '.join('?' * len(names))})")
    if any(processors):
        values = [tuple(row[name] if proc is None or row[name] is None else proc(row[name])
                        for name, proc in zip(names, processors, strict=True)) for row in rows]
    else:
        values = [tuple(row.values()) for row in rows]
    conn.exec_driver_sql(statement, values)


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _free_digest_name(conn: Connection, day: str) -> str:
    taken = set(conn.scalars(select(t.digests.c.name).where(t.digests.c.name.like(f"{day}%"))))
    if day not in taken:
        return day
    n = 2
    while f"{day}-{n}" in taken:
        n += 1
    return f"{day}-{n}"


def _paper_row(paper: Paper, snapshot_id: int, captured: datetime, digest_id: int | None,
               position: int) -> dict[str, Any]:
    return {
        "key": paper.key, "title_key": paper.title_key, "arxiv_id": paper.arxiv_id,
        "title": paper.title, "abstract": paper.abstract, "published": paper.published,
        "org_handle": paper.org_handle, "org_name": paper.org_name,
        "author_count": paper.author_count, "links": "\n".join(paper.links),
        "first_snapshot_id": snapshot_id, "first_seen_at": captured,
        "digest_id": digest_id, "digest_position": position if digest_id else None,
    }


def _published_papers() -> Any:
    first_sighting = (t.sightings.c.paper_id == t.papers.c.id) & (
        t.sightings.c.snapshot_id == t.papers.c.first_snapshot_id)
    return select(
        t.papers, t.digests.c.name.label("digest_name"),
        t.sightings.c.rank, t.sightings.c.comments, t.sightings.c.upvotes,
    ).select_from(
        t.papers.join(t.digests, t.digests.c.id == t.papers.c.digest_id)
        .join(t.sightings, first_sighting)
    )


def _stored_paper(row: Any) -> StoredPaper:
    paper = Paper(
        title=row.title, abstract=row.abstract, rank=row.rank,
        published=row.published, org_handle=row.org_handle, org_name=row.org_name,
        author_count=row.author_count, comments=row.comments, upvotes=row.upvotes,
        links=tuple(row.links.split("\n")) if row.links else (), arxiv_id=row.arxiv_id,
    )
    return StoredPaper(key=row.key, paper=paper, first_seen=aware(row.first_seen_at),
                       digest=row.digest_name, position=row.digest_position)


def _digest_info(row: Any) -> DigestInfo:
    return DigestInfo(name=row.name, captured_at=aware(row.captured_at),
                      paper_count=row.paper_count, held_reason=row.held_reason)

