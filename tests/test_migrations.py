"""Issue 8, item 7: migration 1 is frozen, a store made by it upgrades, and read-only
commands never create a store (nor leave a lock file git would show)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT, listed
from sqlalchemy import Column, Connection, Text, create_engine, inspect, select, text

from digest.cli.main import main
from digest.errors import StoreError
from digest.mail import subscribers as book
from digest.models import Paper, Snapshot
from digest.statuses import PAUSED, DeliveryStatus, SubscriberStatus
from digest.store import open_store, schema
from digest.store.ingest import among, with_key, with_title


def columns(url: str) -> dict[str, set[str]]:
    engine = create_engine(url)
    try:
        found = inspect(engine)
        return {name: {c["name"] for c in found.get_columns(name)} for name in found.get_table_names()}
    finally:
        engine.dispose()


def test_migrations_build_todays_schema(store_url: str) -> None:
    open_store(store_url).close()
    built = columns(store_url)
    for table in schema.metadata.sorted_tables:
        assert built[table.name] == {c.name for c in table.columns}, table.name


def test_a_column_added_later_does_not_break_fresh_installs_or_upgrades(
        store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A store made by today's migrations, as the current release leaves it.
    first = open_store(store_url)
    first.close()

    # The next release adds a column: to today's tables, and as the next migration.
    later = max(version for version, _, _ in schema.MIGRATIONS) + 1
    monkeypatch.setattr(schema.papers, "_columns", schema.papers._columns)  # restored after
    schema.papers.append_column(Column("venue", Text))

    def m002_venue(conn: Connection) -> None:
        conn.execute(text("ALTER TABLE papers ADD COLUMN venue TEXT"))

    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, (later, "venue", m002_venue)])
    try:
        upgraded = open_store(store_url)  # the old store upgrades
        upgraded.close()
        assert "venue" in columns(store_url)["papers"]
        engine = create_engine(store_url)
        with engine.begin() as conn:  # and a fresh install works too
            for table in reversed(schema.metadata.sorted_tables):
                conn.execute(text(f"DROP TABLE {table.name}"))
        engine.dispose()
        fresh = open_store(store_url)
        fresh.close()
        assert "venue" in columns(store_url)["papers"]
    finally:
        schema.papers._columns.remove(schema.papers.c.venue)


def test_read_only_commands_create_no_store(tmp_path: Path) -> None:
    for command in (["history"], ["subscribers", "list"], ["subscribers", "export"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2
        assert result.stderr == ("error: sqlite:///digest.sqlite3: no store here yet — run digest "
                                 "ingest or digest run first, or point --db at the store\n")
    assert list(tmp_path.iterdir()) == []


def test_store_files_are_ignored_by_git() -> None:
    names = ["digest.sqlite3", "digest.sqlite3.lock", "digest.sqlite3-wal", "digest.sqlite3-shm"]
    checked = subprocess.run(["git", "check-ignore", "--no-index", *names], cwd=ROOT,
                             capture_output=True, text=True)
    assert checked.stdout.split() == names


def test_a_store_from_before_migration_3_upgrades_with_list_others_off(
        store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 11: subscribers.list_others is added by migration 3, false for everyone there."""
    with monkeypatch.context() as before:
        before.setattr(schema, "MIGRATIONS", [m for m in schema.MIGRATIONS if m[0] < 3])
        open_store(store_url).close()
    assert "list_others" not in columns(store_url)["subscribers"]
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO subscribers (email, email_key, topics, status, created_at, "
                          "updated_at) VALUES ('ada@example.org', 'ada@example.org', 'diffusion', "
                          "'active', '2026-11-01 00:00:00', '2026-11-01 00:00:00')"))
    engine.dispose()
    upgraded = open_store(store_url)
    try:
        assert "list_others" in columns(store_url)["subscribers"]
        ada = book.find(upgraded, "ada@example.org")
        assert ada is not None and ada.list_others is False and ada.topics == ("diffusion",)
        on, _ = book.add(upgraded, "bob@example.org", topics="robots", list_others=True)
        assert on.list_others is True
        with upgraded.engine.connect() as conn:
            assert list(conn.execute(text("SELECT version FROM schema_migrations ORDER BY version"))
                        .scalars()) == [version for version, _, _ in schema.MIGRATIONS]
    finally:
        upgraded.close()


def test_migrations_are_recorded_once(store_url: str) -> None:
    open_store(store_url).close()
    open_store(store_url).close()
    engine = create_engine(store_url)
    with engine.connect() as conn:
        versions = list(conn.scalars(select(schema.schema_migrations.c.version)))
    engine.dispose()
    assert versions == [v for v, _, _ in schema.MIGRATIONS]


def test_statuses_are_the_stored_strings(tmp_path: Path) -> None:
    """A StrEnum status equals, prints and serialises as the string stored in the table."""
    assert SubscriberStatus.ACTIVE == "active" and f"{DeliveryStatus.SENT}" == "sent"
    assert str(DeliveryStatus.DEFERRED) == "deferred" and json.dumps([PAUSED]) == '["paused"]'
    url = f"sqlite:///{tmp_path / 's.sqlite3'}"
    store = open_store(url)
    book.add(store, "ada@example.org", status=PAUSED)
    found = book.find(store, "ada@example.org")
    assert found is not None and found.status is SubscriberStatus.PAUSED
    store.close()
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.scalar(select(schema.subscribers.c.status)) == "paused"
    engine.dispose()


def indexes(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {index["name"] for index in inspect(engine).get_indexes(table)}
    finally:
        engine.dispose()


def test_a_store_from_before_migration_4_upgrades_and_still_knows_its_papers(
        store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12: migration 4 swaps the full title index for one of the papers not keyed by
    their title; every paper is still recognised by its title after the upgrade."""
    by_title = Paper(title="Scaling Laws: A Survey", abstract="About scaling.")
    by_id = Paper(title="Sparse Attention Revisited", abstract="About sparsity.",
                  arxiv_id="2501.01234")
    with monkeypatch.context() as before:
        before.setattr(schema, "MIGRATIONS", [m for m in schema.MIGRATIONS if m[0] < 4])
        open_store(store_url).close()
    stored_as_of_then(store_url, by_title, by_id)
    assert "ix_papers_title_key" in indexes(store_url, "papers")
    upgraded = open_store(store_url)
    try:
        found = indexes(store_url, "papers")
        assert "ix_papers_title_key" not in found and "ix_papers_title_other" in found
        # The same titles again, one now with an id, the other now without: nothing is new.
        again = (Paper(title="Scaling laws: a survey", abstract="Again.", arxiv_id="2502.00001"),
                 Paper(title="Sparse Attention Revisited", abstract="Again."))
        result, _ = upgraded.ingest(snapshot("b" * 64, datetime(2026, 3, 13, tzinfo=UTC), *again))
        assert (result.papers, result.new) == (2, 0)
        assert upgraded.counts()["papers"] == 2
    finally:
        upgraded.close()


def stored_as_of_then(url: str, *papers: Paper) -> None:
    """Store `papers` (one snapshot of 2026-03-12) as the release of migrations 1-4 did,
    by SQL: today's code writes columns those stores do not have yet."""
    engine = create_engine(url)
    with engine.begin() as conn:
        sid = conn.scalar(text(
            "INSERT INTO snapshots (sha256, source, path, captured_at, ingested_at, paper_count, "
            "new_count, baseline) VALUES (:sha, 'test', 'old.txt', '2026-03-12 00:00:00', "
            "'2026-03-12 00:00:00', :n, :n, false) RETURNING id"), {"sha": "a" * 64, "n": len(papers)})
        for rank, paper in enumerate(papers, 1):
            pid = conn.scalar(text(
                "INSERT INTO papers (key, title_key, arxiv_id, title, abstract, authors, links, "
                "first_snapshot_id, first_seen_at) VALUES (:key, :tk, :ax, :title, :abstract, '', "
                "'', :sid, '2026-03-12 00:00:00') RETURNING id"),
                {"key": paper.key, "tk": paper.title_key, "ax": paper.arxiv_id, "sid": sid,
                 "title": paper.title, "abstract": paper.abstract})
            conn.execute(text("INSERT INTO sightings (snapshot_id, paper_id, rank) "
                              "VALUES (:sid, :pid, :rank)"), {"sid": sid, "pid": pid, "rank": rank})
    engine.dispose()


def test_a_store_from_before_migration_6_upgrades_and_finds_its_papers_by_key_hash(
        store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12 (bytes written): migration 6 drops the unique index of the key's text for an
    index of its hash, filled for the papers already stored (by SQL on PostgreSQL, which
    must agree with `schema.key_hash`); their sightings, digests and identities stay."""
    old = [Paper(title="Scaling Laws: A Survey", abstract="About scaling."),
           Paper(title="Sparse Attention Revisited", abstract="About sparsity.",
                 arxiv_id="2501.01234"),
           Paper(title="Ünïcode Tïtles Häsh Älike", abstract="Bytes.", ident="doi:10.1/ü")]
    with monkeypatch.context() as before:
        before.setattr(schema, "MIGRATIONS", [m for m in schema.MIGRATIONS if m[0] < 6])
        open_store(store_url).close()
    stored_as_of_then(store_url, *old)
    upgraded = open_store(store_url)
    try:
        assert "ix_papers_key_hash" in indexes(store_url, "papers")
        with upgraded.engine.connect() as conn:
            hashes = dict(conn.execute(select(schema.papers.c.key, schema.papers.c.key_hash)).all())
            assert hashes == {paper.key: schema.key_hash(paper.key) for paper in old}
            if conn.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        for paper in old:
            found = upgraded.paper_history(paper.key)
            assert found is not None and found[0].paper.title == paper.title
            assert [s.rank for s in found[1]] == [old.index(paper) + 1]
        again = [Paper(title="Scaling laws: a survey", abstract="Again.", arxiv_id="2502.00001"),
                 Paper(title="Sparse Attention Revisited", abstract="Again."),
                 Paper(title="Other title", abstract="Again.", ident="doi:10.1/ü"),
                 Paper(title="A New One", abstract="New.")]
        result, _ = upgraded.ingest(snapshot("b" * 64, datetime(2026, 3, 13, tzinfo=UTC), *again))
        assert (result.papers, result.new) == (4, 1)
        assert upgraded.counts()["papers"] == 4
        assert upgraded.counts()["sightings"] == 7
    finally:
        upgraded.close()


def test_title_lookups_use_an_index(tmp_path: Path) -> None:
    """The partial index is used only when a query repeats its condition word for word; a
    key is found by its hash (migration 6: the key's text has no index)."""
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    store = open_store(url)
    papers = schema.papers
    try:
        with store.engine.connect() as conn:
            lookups = [select(papers.c.id).where(with_title("x")),
                       select(papers.c.id).where(among(conn, papers.c.title_key, ["x", "y"]),
                                                 text(schema.OTHER_KEYS)),
                       select(papers.c.id).where(among(conn, papers.c.key_hash, [1, 2])),
                       select(papers.c.id).where(with_key("title:x"))]
            for query in lookups:
                plan = " ".join(str(row[-1]) for row in conn.execute(
                    text("EXPLAIN QUERY PLAN " + str(query.compile(
                        dialect=conn.dialect, compile_kwargs={"literal_binds": True})))))
                assert "SCAN papers" not in plan and "USING" in plan, plan
    finally:
        store.close()


def snapshot(sha256: str, captured: datetime, *papers: Paper) -> Snapshot:
    return Snapshot(path=f"{sha256[:4]}.txt", source="test", captured_at=captured,
                    sha256=sha256, listings=listed(*papers))


KILLED_MID_MIGRATION = """
import os, signal, sys
import digest.store.schema as schema
from digest.store import open_store

steps = list(schema.MIGRATIONS)
schema.MIGRATIONS[:] = steps[:3]
open_store(sys.argv[1]).close()  # a store as migration 3 left it


def killed_after_the_ddl(conn):
    steps[3][2](conn)  # migration 4's index swap ran; its version is not recorded yet
    os.kill(os.getpid(), signal.SIGKILL)


schema.MIGRATIONS[:] = steps[:3] + [(4, steps[3][1], killed_after_the_ddl)]
open_store(sys.argv[1])
"""


def test_a_migration_killed_half_way_leaves_the_store_as_it_was(store_url: str) -> None:
    """SIGKILL between a migration's DDL and its version record: the next open applies it
    whole (on SQLite the DDL ran outside any transaction before, and the store would not
    open again: "no such index: ix_papers_title_key")."""
    killed = subprocess.run([sys.executable, "-c", KILLED_MID_MIGRATION, store_url],
                            cwd=ROOT, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    found = indexes(store_url, "papers")
    assert "ix_papers_title_key" in found and "ix_papers_title_other" not in found
    open_store(store_url).close()
    found = indexes(store_url, "papers")
    assert "ix_papers_title_key" not in found and "ix_papers_title_other" in found
    engine = create_engine(store_url)
    with engine.connect() as conn:
        assert list(conn.scalars(select(schema.schema_migrations.c.version))) == [
            v for v, _, _ in schema.MIGRATIONS]
    engine.dispose()


def test_a_read_is_one_view_while_another_connection_commits(store_url: str) -> None:
    """`store.read()` promises one consistent view: a commit made meanwhile is not seen."""
    store = open_store(store_url)
    try:
        with store.read() as view:
            before = view.papers.counts()["snapshots"]
            store.ingest(snapshot("c" * 64, datetime(2026, 3, 12, tzinfo=UTC),
                                  Paper(title="Seen Later", abstract="x")))
            assert view.papers.counts()["snapshots"] == before
        assert store.counts()["snapshots"] == before + 1
    finally:
        store.close()


def test_two_openers_of_an_old_postgres_store_migrate_one_at_a_time(pg_url: str) -> None:
    """A cron run and the web app opening a store that needs a migration: the second waits
    for the first's migration lock, then finds the work done (without it, it ran the same
    DROP INDEX and failed once with "index does not exist")."""
    import threading

    from digest.store import MIGRATION_LOCK, MIGRATION_LOCK_KEY

    steps = list(schema.MIGRATIONS)
    schema.MIGRATIONS[:] = steps[:3]
    try:
        open_store(pg_url).close()
    finally:
        schema.MIGRATIONS[:] = steps
    holder = create_engine(pg_url)
    opened: list[str] = []
    with holder.begin() as conn:
        conn.execute(MIGRATION_LOCK, {"k": MIGRATION_LOCK_KEY})
        second = threading.Thread(target=lambda: (open_store(pg_url).close(), opened.append("ok")))
        second.start()
        second.join(0.5)
        assert opened == []  # waiting for the lock, not migrating beside its holder
    second.join(10)
    holder.dispose()
    assert opened == ["ok"] and "ix_papers_title_other" in indexes(pg_url, "papers")


KILLED_IN_MIGRATION_6 = """
import os, signal, sys
import digest.store.schema as schema
from digest.store import open_store

steps = list(schema.MIGRATIONS)


def killed_after_the_rebuild(conn):
    steps[5][2](conn)  # the papers table is rebuilt; the version is not recorded yet
    os.kill(os.getpid(), signal.SIGKILL)


schema.MIGRATIONS[:] = steps[:5] + [(6, steps[5][1], killed_after_the_rebuild)]
open_store(sys.argv[1])
"""


def test_a_kill_in_migration_6_leaves_the_papers_and_their_sightings(
        store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL after migration 6 rebuilt the papers table (with foreign keys off) and before
    its record: the store is as migration 5 left it, and the next open applies it whole."""
    with monkeypatch.context() as before:
        before.setattr(schema, "MIGRATIONS", [m for m in schema.MIGRATIONS if m[0] < 6])
        open_store(store_url).close()
    kept = Paper(title="Kept Through A Kill", abstract="Still here.")
    stored_as_of_then(store_url, kept)
    killed = subprocess.run([sys.executable, "-c", KILLED_IN_MIGRATION_6, store_url],
                            cwd=ROOT, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert "ix_papers_key_hash" not in indexes(store_url, "papers")
    assert "key_hash" not in columns(store_url)["papers"]
    store = open_store(store_url)
    try:
        assert "ix_papers_key_hash" in indexes(store_url, "papers")
        found = store.paper_history(kept.key)
        assert found is not None and [s.rank for s in found[1]] == [1]
    finally:
        store.close()


def test_a_store_of_a_newer_release_is_refused_unchanged(store_url: str) -> None:
    """An older paper-digest opening a newer release's store would write rows its tables no
    longer take (rolling back past migration 6 failed on papers.key_hash): refused, one line."""
    open_store(store_url).close()
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(schema.schema_migrations.insert().values(version=99, name="from the future"))
    engine.dispose()
    with pytest.raises(StoreError, match=r"newer paper-digest \(schema version 99") as raised:
        open_store(store_url)
    assert "upgrade paper-digest" in raised.value.fix
    engine = create_engine(store_url)
    with engine.connect() as conn:
        assert 99 in set(conn.scalars(select(schema.schema_migrations.c.version)))
    engine.dispose()
