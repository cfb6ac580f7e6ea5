"""Migration 1, frozen: the tables exactly as the first release created them.

Fixed text the day it shipped, never built from today's schema objects (`digest.store.schema`),
so that a later migration that adds a column does not break fresh installs: they run
this, then every migration after it, like an upgraded store did.
"""

from __future__ import annotations

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
    text,
)

frozen = MetaData()

snapshots = Table(
    "snapshots",
    frozen,
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
    frozen,
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
    frozen,
    Column("id", Integer, primary_key=True),
    # The identity: set once, never changed (feeds and readers rely on it).
    Column("key", Text, nullable=False, unique=True),
    Column("title_key", Text, nullable=False, index=True),
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
    # Partial: most papers from page text carry no arXiv id, and NULLs need no index entry.
    Index("ux_papers_arxiv", "arxiv_id", unique=True,
          sqlite_where=text("arxiv_id IS NOT NULL"), postgresql_where=text("arxiv_id IS NOT NULL")),
)

sightings = Table(
    "sightings",
    frozen,
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
    frozen,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False),  # as normalised by email-validator
    Column("email_key", String(320), nullable=False, unique=True),  # case-folded: one row per inbox
    Column("name", Text),
    Column("topics", Text, nullable=False, default=""),  # "reasoning, diffusion"; "" = everything
    Column("status", String(20), nullable=False),  # active | paused | unsubscribed
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

# The delivery log: one row per (digest, subscriber), planned with the digest, then
# pending -> sending -> sent | failed | skipped, or unknown when a run died mid-send.
deliveries = Table(
    "deliveries",
    frozen,
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
    frozen,
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
    frozen,
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
    frozen,
    Column("source", String(100), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("reason", Text, nullable=False),
)


def m001_initial(conn: Connection) -> None:
    """Create the first release's tables."""
    frozen.create_all(conn)
