"""The store's tables (SQLAlchemy Core) and its numbered migrations.

One schema for SQLite and PostgreSQL. Times are stored as naive UTC so both behave alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    false,
    func,
    insert,
    select,
    text,
)

from digest.errors import StoreError

metadata = MetaData()
# The papers whose key is not `title:` + their title_key (arXiv ids, DOIs, feed guids). The
# queries that use ix_papers_title_other repeat this text: a planner matches it literally.
OTHER_KEYS = "substr(key, 1, 6) <> 'title:'"
# papers.key_hash on PostgreSQL, as `key_hash` computes it: the first 4 bytes of the key's MD5,
# a signed big-endian integer (migration 6 fills it with this for the papers already stored).
PG_KEY_HASH = "('x' || substr(md5(key), 1, 8))::bit(32)::integer"


def key_hash(key: str) -> int:
    """The integer a paper's key is found by (papers.key_hash): a key's index entry is then
    a dozen bytes, not the key's text, so the index a new paper lands in at random has a
    sixth of the pages (issue 12: bytes written). Not unique: a hit compares the key (32
    bits: in a store of a million papers one look-up in 4,000 reads a paper it then drops)."""
    digest = hashlib.md5(key.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(100), nullable=False),
    Column("applied_at", DateTime, nullable=False, server_default=func.now()),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("source", String(100), nullable=False),
    Column("path", Text, nullable=False),
    Column("captured_at", DateTime, nullable=False, index=True),
    Column("ingested_at", DateTime, nullable=False),
    Column("paper_count", Integer, nullable=False),
    Column("new_count", Integer, nullable=False),
    Column("baseline", Boolean, nullable=False, default=False),
)

digests = Table(
    "digests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(40), nullable=False, unique=True),
    Column("snapshot_id", ForeignKey("snapshots.id"), nullable=False),
    Column("captured_at", DateTime, nullable=False),
    Column("paper_count", Integer, nullable=False),
    # The flood guard holds a suspicious digest back from email until `digest release`.
    Column("held_reason", Text),
)

papers = Table(
    "papers",
    metadata,
    Column("id", Integer, primary_key=True),
    # The identity: set once, never changed (feeds and readers rely on it). Found by
    # key_hash (migration 6): unique because ingests run one at a time and look it up first.
    Column("key", Text, nullable=False),
    Column("key_hash", Integer, nullable=False),
    Column("title_key", Text, nullable=False),
    Column("arxiv_id", String(40)),
    Column("title", Text, nullable=False),
    Column("abstract", Text, nullable=False),
    Column("published", Date),
    Column("org_handle", Text),
    Column("org_name", Text),
    Column("author_count", Integer),
    Column("authors", Text, nullable=False, default=""),  # newline-separated names
    Column("page_url", Text),  # the paper's own page, when a source names one
    Column("links", Text, nullable=False),  # newline-separated http(s) URLs
    Column("first_snapshot_id", ForeignKey("snapshots.id"), nullable=False),
    Column("first_seen_at", DateTime, nullable=False),
    # Null for papers recorded by a baseline ingest: seen, never published.
    Column("digest_id", ForeignKey("digests.id")),
    Column("digest_position", Integer),
    Index("ix_papers_digest", "digest_id", "digest_position"),
    Index("ix_papers_key_hash", "key_hash"),
    # Migration 1 also makes ux_papers_arxiv, unique on arxiv_id where it is not null (partial:
    # most papers from page text carry none), and migration 4 ix_papers_title_other, on
    # title_key where the key is not the title (OTHER_KEYS: a paper keyed by its title is found
    # by `key`, so a new page-text paper writes one random index entry, not two). Neither is
    # declared here: no query or DDL uses the declarations, and their `postgresql_where` loads
    # SQLAlchemy's whole PostgreSQL dialect (about 25 ms) into every SQLite process.
)

sightings = Table(
    "sightings",
    metadata,
    Column("snapshot_id", ForeignKey("snapshots.id"), primary_key=True),
    Column("paper_id", ForeignKey("papers.id"), primary_key=True),
    Column("rank", Integer, nullable=False),
    Column("comments", Integer),
    Column("upvotes", Integer),
    Index("ix_sightings_paper", "paper_id"),
    sqlite_with_rowid=False,  # the primary key is the table: one b-tree less to write
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False),  # as normalised by email-validator
    Column("email_key", String(320), nullable=False, unique=True),  # case-folded: one row per inbox
    Column("name", Text),
    Column("topics", Text, nullable=False, default=""),  # "reasoning, diffusion"; "" = everything
    Column("status", String(20), nullable=False),  # active | paused | unsubscribed
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    # With topics: also list the other new papers' titles after the matched ones (migration 3).
    Column("list_others", Boolean, nullable=False, server_default=false()),
)

# The delivery log: one row per (digest, subscriber), planned with the digest, then
# pending -> sending -> sent | failed | skipped, or unknown when a run died mid-send.
deliveries = Table(
    "deliveries",
    metadata,
    Column("digest_id", ForeignKey("digests.id"), primary_key=True),
    Column("subscriber_id", ForeignKey("subscribers.id"), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("message_id", Text),
    Column("claimed_by", Text),  # host:pid of the run that is sending it
    Column("claimed_at", DateTime),
    Column("attempts", Integer, nullable=False, default=0),
    Column("reply", Text),  # the server's last reply, or why it was skipped
    Column("finished_at", DateTime),
    Index("ix_deliveries_status", "status", "digest_id"),
)

# Every fetch of an http source, kept raw (gzip) before parsing, so it can be re-parsed.
fetches = Table(
    "fetches",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source", String(100), nullable=False),
    Column("url", Text, nullable=False),
    Column("fetched_at", DateTime, nullable=False),
    Column("status", Integer, nullable=False),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("content_type", Text),
    Column("sha256", String(64)),
    Column("body_gzip", LargeBinary),
    Index("ix_fetches_source", "source", "id"),
)

# One row per `digest run` cycle: what it did, or why it failed (the scheduler's memory).
cycles = Table(
    "cycles",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("status", String(20), nullable=False),  # running | ok | failed
    Column("fetched", Integer, nullable=False, default=0),
    Column("new", Integer, nullable=False, default=0),
    Column("sent", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    Column("report", Text, nullable=False, default=""),
)

# Alerts sent to the operator: at most one per source per day.
alerts = Table(
    "alerts",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("reason", Text, nullable=False),
)

# What the arXiv API said about a title (issue 11 enrichment): a hit's id and authors, or a miss
# (no id), retried once it is older than a week. Keyed by the normalised title.
arxiv_lookups = Table(
    "arxiv_lookups",
    metadata,
    Column("title_key", Text, primary_key=True),
    Column("arxiv_id", String(40)),
    Column("authors", Text, nullable=False, default=""),  # newline-separated names
    Column("looked_up_at", DateTime, nullable=False),
)

# The quiet seal (issue 12): one row, written by a full cycle that left nothing to do, deleted
# by every other transaction; while it stands, `digest run` may take the quiet path
# (digest.quiet). The seal is JSON: what "unchanged" means for each source and output.
quiet_seal = Table(
    "quiet_seal",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("seal", Text, nullable=False),
)
Migration = Callable[[Connection], None]


def _m001_initial(conn: Connection) -> None:
    """Migration 1 (schema_m001): imported only when a new store needs it."""
    from digest.store.schema_m001 import m001_initial

    m001_initial(conn)


def _m002_arxiv_lookups(conn: Connection) -> None:
    """Migration 2, frozen as it shipped (its own copy of the table, like schema_m001): a
    later change to arxiv_lookups is a migration of its own."""
    frozen = MetaData()
    Table("arxiv_lookups", frozen,
          Column("title_key", Text, primary_key=True),
          Column("arxiv_id", String(40)),
          Column("authors", Text, nullable=False, default=""),
          Column("looked_up_at", DateTime, nullable=False))
    frozen.create_all(conn)


def _m003_list_others(conn: Connection) -> None:
    """Migration 3, frozen as it shipped: subscribers.list_others, false for everyone."""
    default = "0" if conn.dialect.name == "sqlite" else "false"
    conn.execute(text("ALTER TABLE subscribers ADD COLUMN list_others BOOLEAN NOT NULL "
                      f"DEFAULT {default}"))


def _m004_title_lookup(conn: Connection) -> None:
    """Migration 4, frozen as it shipped: the title index keeps only the papers whose key is
    not their title (the others are found by their key's unique index)."""
    conn.execute(text("DROP INDEX ix_papers_title_key"))
    conn.execute(text("CREATE INDEX ix_papers_title_other ON papers (title_key) "
                      "WHERE substr(key, 1, 6) <> 'title:'"))


def _m005_quiet_seal(conn: Connection) -> None:
    """Migration 5, frozen as it shipped: the quiet seal's table."""
    frozen = MetaData()
    Table("quiet_seal", frozen,
          Column("id", Integer, primary_key=True, autoincrement=False),
          Column("seal", Text, nullable=False))
    frozen.create_all(conn)


# Migration 6's papers table on SQLite, as it shipped: the papers table before it, without the
# key's unique constraint (SQLite drops one only with its table), with key_hash.
_M006_PAPERS = """CREATE TABLE papers_m006 (
    id INTEGER NOT NULL, "key" TEXT NOT NULL, title_key TEXT NOT NULL,
    arxiv_id VARCHAR(40), title TEXT NOT NULL, abstract TEXT NOT NULL, published DATE,
    org_handle TEXT, org_name TEXT, author_count INTEGER, authors TEXT NOT NULL,
    page_url TEXT, links TEXT NOT NULL, first_snapshot_id INTEGER NOT NULL,
    first_seen_at DATETIME NOT NULL, digest_id INTEGER, digest_position INTEGER,
    key_hash INTEGER NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(first_snapshot_id) REFERENCES snapshots (id),
    FOREIGN KEY(digest_id) REFERENCES digests (id))"""
_M006_COLUMNS = ('id, "key", title_key, arxiv_id, title, abstract, published, org_handle, '
                 "org_name, author_count, authors, page_url, links, first_snapshot_id, "
                 "first_seen_at, digest_id, digest_position")


def _m006_key_hash(conn: Connection) -> None:
    """Migration 6, frozen as it shipped: papers are found by key_hash, not by a unique index
    of the key's text (each new paper wrote a page of that index at random: issue 12)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE papers ADD COLUMN key_hash INTEGER"))
        conn.execute(text(f"UPDATE papers SET key_hash = {PG_KEY_HASH}"))
        conn.execute(text("ALTER TABLE papers ALTER COLUMN key_hash SET NOT NULL"))
        conn.execute(text("ALTER TABLE papers DROP CONSTRAINT papers_key_key"))
    else:  # a new table, copied in id order (open_store turns foreign keys off meanwhile)
        driver = conn.connection.driver_connection
        assert driver is not None
        driver.create_function("digest_m006_key_hash", 1, key_hash, deterministic=True)
        conn.execute(text(_M006_PAPERS))
        conn.execute(text(f"INSERT INTO papers_m006 ({_M006_COLUMNS}, key_hash) SELECT "
                          f"{_M006_COLUMNS}, digest_m006_key_hash(key) FROM papers ORDER BY id"))
        conn.execute(text("DROP TABLE papers"))
        conn.execute(text("ALTER TABLE papers_m006 RENAME TO papers"))
        conn.execute(text("CREATE UNIQUE INDEX ux_papers_arxiv ON papers (arxiv_id) "
                          "WHERE arxiv_id IS NOT NULL"))
        conn.execute(text("CREATE INDEX ix_papers_digest ON papers (digest_id, digest_position)"))
        conn.execute(text("CREATE INDEX ix_papers_title_other ON papers (title_key) "
                          "WHERE substr(key, 1, 6) <> 'title:'"))
    conn.execute(text("CREATE INDEX ix_papers_key_hash ON papers (key_hash)"))


# Each migration is frozen the day it ships (see schema_m001): today's tables above are
# what the migrations add up to, and a test checks that they agree.
MIGRATIONS: list[tuple[int, str, Migration]] = [
    (1, "initial", _m001_initial),
    (2, "arxiv lookups", _m002_arxiv_lookups),
    (3, "subscribers list others", _m003_list_others),
    (4, "title lookup by key", _m004_title_lookup),
    (5, "quiet seal", _m005_quiet_seal),
    (6, "papers found by key hash", _m006_key_hash),
]


def migrate(conn: Connection) -> list[int]:
    """Apply the migrations not yet recorded; return the versions applied."""
    metadata.create_all(conn, tables=[schema_migrations])
    done = set(conn.scalars(select(schema_migrations.c.version)))
    newer = sorted(done - {version for version, _, _ in MIGRATIONS})
    if newer:  # a newer release's store: its tables are not the ones this code writes
        raise StoreError(str(conn.engine.url.render_as_string(hide_password=True)),
                         f"made by a newer paper-digest (schema version {newer[-1]}; this one "
                         f"knows up to {MIGRATIONS[-1][0]})",
                         "upgrade paper-digest, or restore the backup made before the upgrade")
    applied = []
    for version, name, step in MIGRATIONS:
        if version in done:
            continue
        step(conn)
        conn.execute(insert(schema_migrations).values(version=version, name=name))
        applied.append(version)
    return applied
