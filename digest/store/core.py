"""The Store: a migrated database behind a SQLAlchemy engine, and `open_store`. Imported
through the package (`from digest.store import Store`), which loads it on first use."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, delete, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from digest.errors import StoreError
from digest.models import DigestInfo, IngestResult, Sighting, Snapshot, SnapshotRecord, StoredPaper
from digest.store import DEFAULT_MAX_NEW
from digest.store import schema as t
from digest.store.ingest import Prepare as Prepare
from digest.store.times import aware as aware
from digest.store.times import naive_utc as naive_utc
from digest.store.transaction import Transaction

# Openers of one PostgreSQL store migrate one at a time ("pdmi"; the run lock is "pdig").
MIGRATION_LOCK_KEY = 0x70646D69
MIGRATION_LOCK = text("SELECT pg_advisory_xact_lock(:k, hashtext(current_schema()))")
BREAK_SEAL = delete(t.quiet_seal)
# Called inside the ingest transaction, before the commit, with its results and papers.


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

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One transaction over every area: committed when the block ends, rolled back (all
        of it) when it raises.

        Its first statement breaks the quiet seal: whatever it writes, the next `digest run`
        takes the full path (digest.quiet). Every write to the store comes through here."""
        with self.engine.begin() as conn:
            conn.execute(BREAK_SEAL)
            yield Transaction(conn)

    @contextmanager
    def read(self) -> Iterator[Transaction]:
        """A transaction for reading: one consistent view, nothing committed.

        The view is a snapshot on both backends: PostgreSQL reads at REPEATABLE READ (its
        default, READ COMMITTED, sees each commit between two statements), and SQLite
        opens the transaction itself (Python's sqlite3 runs a SELECT outside any)."""
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            else:
                conn.exec_driver_sql("BEGIN")
            yield Transaction(conn)

    # -- ingest ---------------------------------------------------------------------------

    def find_snapshot(self, sha256: str) -> IngestResult | None:
        """Return the earlier ingest of these exact bytes, if any."""
        with self.read() as tx:
            return tx.papers.find_snapshot(sha256)

    def newest_capture(self) -> datetime | None:
        """Return the capture time of the newest snapshot stored."""
        with self.read() as tx:
            return tx.papers.newest_capture()

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

        `prepare(results, papers)` runs inside the transaction once the digest is decided,
        before the last snapshot's rows are written (the caller renders the outputs there),
        and the `finish` it may return runs after them, just before the commit: work it
        started meanwhile (on another core) ends there. If either raises, nothing is
        committed. Returns a result per snapshot and the digest's papers as stored (empty
        without a digest), so the caller can render them without reading them back.
        """
        with self.transaction() as tx:
            return tx.papers.ingest(snapshots, baseline=baseline, now=now or datetime.now(UTC),
                                    max_new=max_new, prepare=prepare)

    # -- reading: each a read transaction of its own -----------------------------------------

    def digests(self) -> list[DigestInfo]:
        """Return every digest, newest first."""
        with self.read() as tx:
            return tx.papers.digests()

    def digest(self, name: str) -> DigestInfo | None:
        """Return the digest of this name, if any."""
        with self.read() as tx:
            return tx.papers.digest(name)

    def digest_papers(self, name: str) -> list[StoredPaper]:
        """Return a digest's papers in page order, as they were first seen."""
        with self.read() as tx:
            return tx.papers.digest_papers(name)

    def feed_papers(self, limit: int) -> list[StoredPaper]:
        """Return the latest `limit` published papers, newest digest first, page order within."""
        with self.read() as tx:
            return tx.papers.feed_papers(limit)

    def paper_history(self, key: str) -> tuple[StoredPaper, list[Sighting]] | None:
        """A paper by its key, with every sighting (time, source, rank, comments, upvotes)."""
        with self.read() as tx:
            return tx.papers.paper_history(key)

    def history(self) -> list[SnapshotRecord]:
        """Return every snapshot, oldest first, with its counts and digest name."""
        with self.read() as tx:
            return tx.papers.history()

    def counts(self) -> dict[str, int]:
        """Return the number of rows in each table (for status lines and tests)."""
        with self.read() as tx:
            return tx.papers.counts()

    def delivery_counts(self) -> dict[str, int]:
        """Return how many deliveries are in each status (for reports and tests)."""
        with self.read() as tx:
            return tx.deliveries.status_counts()


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
        with engine.connect() as conn:
            _migrate(conn)
    except StoreError:
        engine.dispose()
        raise
    except OperationalError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise StoreError(url, f"cannot open the store ({reason})",
                         "check the --db URL / DIGEST_DB and that the server is running") from None
    return Store(engine)


def _migrate(conn: Connection) -> None:
    """Apply the pending migrations in one transaction, one opener at a time."""
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        # Off while a migration rebuilds a table others refer to (SQLite's own recipe for
        # that; the pragma only takes effect outside a transaction); checked before commit.
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        if sqlite:
            # Python's sqlite3 runs DDL outside a transaction: without this BEGIN a
            # migration killed half-way would leave its tables changed but unrecorded.
            # IMMEDIATE: a second process opening the store waits, then finds it done.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:  # the same wait on PostgreSQL, per store (schema), until this commits
            conn.execute(MIGRATION_LOCK, {"k": MIGRATION_LOCK_KEY})
        if t.migrate(conn) and sqlite:
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").first()
            if broken is not None:
                raise StoreError(str(conn.engine.url), f"a migration broke a reference {broken}",
                                 "report this; the store is left as it was")
        conn.commit()
    finally:
        conn.rollback()  # nothing to undo after the commit
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()
