"""The store and the diff, on SQLite and PostgreSQL: what is new, what is kept, what is refused."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import EXAMPLES, entry, listed, page
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError

from digest.config import Settings
from digest.diff import split_new, unique_listings
from digest.errors import StoreError
from digest.models import Listing, Paper, Snapshot, normalize_arxiv_id, normalize_title
from digest.pipeline import ingest, prepare
from digest.sources.files import read_snapshot
from digest.store import Store, open_store
from digest.store.ingest import is_clean
from digest.text import clean

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def write(folder: Path, name: str, *entries: str, header: str | None = None) -> Path:
    path = folder / name
    day = datetime.strptime(name[:10], "%Y-%m-%d")
    path.write_text(page(*entries, header=header or f"{day:%b} {day.day}"))
    return path


def run(store: Store, tmp_path: Path, *paths: Path) -> list[tuple[str, int, int, str | None, str]]:
    settings = Settings(db_url=store.url, out_dir=tmp_path / "out")
    snapshots = prepare(paths, None, NOW)
    return [(r.captured_at.date().isoformat(), r.papers, r.new,
             r.digest.name if r.digest else None, r.status)
            for r in ingest(store, settings, snapshots, NOW)]


def titles(store: Store, name: str) -> list[str]:
    return [p.paper.title for p in store.digest_papers(name)]


def test_normalised_titles_and_keys() -> None:
    assert normalize_title("  MedS$^3$:  Towards   Medical—Models! ") == "meds 3 towards medical models"
    assert normalize_title("ＦＵＬＬＷＩＤＴＨ Title") == normalize_title("fullwidth title")
    assert normalize_title("Straße") == normalize_title("STRASSE")
    assert Paper("Any Title", "", arxiv_id="2410.12345").key == "arxiv:2410.12345"
    assert Paper("Fast & Slow", "").key == "title:fast slow"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2410.12345v2", "2410.12345"), ("arXiv:2410.12345", "2410.12345"),
        ("http://arxiv.org/abs/2104.12255v1", "2104.12255"), ("oai:arXiv.org:0704.0001v3", "0704.0001"),
        ("hep-th/9901001", "hep-th/9901001"), ("math.CA/0611800v2", "math/0611800"),
        ("solv-int/9901001v1", "solv-int/9901001"), ("https://arxiv.org/pdf/2410.12345.pdf", "2410.12345"),
        ("not an id", None),
    ],
)
def test_arxiv_ids(raw: str, expected: str | None) -> None:
    assert normalize_arxiv_id(raw) == expected


def test_diff_is_pure_and_uses_every_identity() -> None:
    a, b, b_again, c = listed(Paper(title="Alpha", abstract=""), Paper(title="BETA!", abstract=""),
                              Paper(title="beta", abstract=""),
                              Paper(title="Renamed", abstract="", arxiv_id="2410.00001"))
    page_papers = unique_listings([a, b, b_again, c])
    assert page_papers == [a, b, c]
    new, seen = split_new(page_papers, {"title:beta": 7, "arxiv:2410.00001": 9})
    assert new == [a] and seen == [(b, 7), (c, 9)]


def test_examples_new_means_never_seen_before(store: Store, tmp_path: Path) -> None:
    results = run(store, tmp_path, EXAMPLES)
    assert results == [
        ("2026-03-11", 7, 7, "2026-03-11", "ingested"),
        ("2026-03-12", 5, 3, "2026-03-12", "ingested"),
        ("2026-03-13", 5, 3, "2026-03-13", "ingested"),
    ]
    # "Q&A over Tables" left the page on Mar 12 and came back on Mar 13: not new again.
    assert titles(store, "2026-03-13") == [
        "HyperMesh$\\cdot$Flow: Continuous Mesh Generation with Rectified Flows",
        "Learning to Forget: Targeted Unlearning in Retrieval-Augmented Generation",
        "A Field Guide to Benchmark Contamination (2020–2026)",
    ]
    assert store.counts() == {"snapshots": 3, "papers": 13, "sightings": 17, "digests": 3}


def test_sightings_keep_every_rank_and_count(store: Store, tmp_path: Path) -> None:
    run(store, tmp_path, EXAMPLES)
    key = next(p.key for d in store.digests() for p in store.digest_papers(d.name)
               if p.paper.title.startswith("Tidal Attention"))
    found = store.paper_history(key)
    assert found is not None
    assert [(s.rank, s.comments) for s in found[1]] == [(1, 12), (3, 15)]


def test_same_bytes_twice_changes_nothing(store: Store, tmp_path: Path) -> None:
    first = EXAMPLES / "2026-03-11.txt"
    run(store, tmp_path, first)
    before = store.counts()
    assert run(store, tmp_path, first) == [("2026-03-11", 7, 7, "2026-03-11", "already ingested")]
    assert store.counts() == before


def test_changed_counts_and_ranks_are_the_same_paper(store: Store, tmp_path: Path) -> None:
    one = write(tmp_path, "2026-03-12.txt", entry("Same Paper", date="Mar 10 1"), entry("Other"))
    two = write(tmp_path, "2026-03-13.txt", entry("Other"), entry("SAME paper!", date="Mar 10, 2026 7"))
    assert [r[2] for r in run(store, tmp_path, one, two)] == [2, 0]
    assert store.counts()["papers"] == 2 and store.counts()["sightings"] == 4


def test_files_are_ingested_in_capture_order_whatever_the_argument_order(tmp_path: Path) -> None:
    files = sorted(EXAMPLES.glob("*.txt"))
    outcomes = set()
    for n, order in enumerate(itertools.permutations(files)):
        store = open_store(f"sqlite:///{tmp_path / f's{n}.sqlite3'}")
        run(store, tmp_path / f"o{n}", *order)
        outcomes.add(tuple((d.name, tuple(titles(store, d.name))) for d in store.digests()))
        store.close()
    assert len(outcomes) == 1


def test_older_snapshot_is_refused_and_nothing_changes(store: Store, tmp_path: Path) -> None:
    run(store, tmp_path, EXAMPLES / "2026-03-12.txt")
    before = store.counts()
    with pytest.raises(StoreError, match="snapshots must be ingested in capture order"):
        run(store, tmp_path, EXAMPLES / "2026-03-11.txt")
    assert store.counts() == before
    # ...unless it is the very same content again.
    assert run(store, tmp_path, EXAMPLES / "2026-03-12.txt")[0][-1] == "already ingested"


def test_a_failed_ingest_leaves_the_store_as_it_was(store: Store, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    run(store, tmp_path, EXAMPLES / "2026-03-11.txt")
    before = store.counts()
    snap = read_snapshot(EXAMPLES / "2026-03-12.txt", None, NOW)
    # A paper row that violates NOT NULL fails the insert half-way through the transaction.
    broken = snap.listings[1].paper
    object.__setattr__(broken, "abstract", None)
    with pytest.raises(Exception, match="(?i)not null|null value"):
        store.ingest(snap, now=NOW)
    assert store.counts() == before
    assert [d.name for d in store.digests()] == ["2026-03-11"]


def test_two_snapshots_on_one_date_get_unique_digest_names(store: Store, tmp_path: Path) -> None:
    morning = write(tmp_path, "2026-03-13T08:00.txt", entry("Morning paper"), header="Mar 13")
    evening = write(tmp_path, "2026-03-13T20:00.txt", entry("Evening paper"), header="Mar 13")
    assert [r[3] for r in run(store, tmp_path, evening, morning)] == ["2026-03-13", "2026-03-13-2"]
    assert titles(store, "2026-03-13-2") == ["Evening paper"]


def test_repeats_within_one_page_count_once(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "2026-03-13.txt", entry("Twice"), entry("Once"), entry("twice"))
    assert run(store, tmp_path, path)[0][1:3] == (2, 2)
    assert titles(store, "2026-03-13") == ["Twice", "Once"]


def test_feed_order_and_limit(store: Store, tmp_path: Path) -> None:
    run(store, tmp_path, EXAMPLES)
    latest = store.feed_papers(4)
    assert [(p.digest, p.position) for p in latest] == [
        ("2026-03-13", 1), ("2026-03-13", 2), ("2026-03-13", 3), ("2026-03-12", 1)]
    assert latest[0].first_seen == datetime(2026, 3, 13, tzinfo=UTC)


def test_bad_store_urls() -> None:
    with pytest.raises(StoreError, match="not a database URL"):
        open_store("not a url")
    with pytest.raises(StoreError, match="folder .* does not exist"):
        open_store("sqlite:////nonexistent/folder/x.sqlite3")
    with pytest.raises(StoreError, match="unsupported database|no driver"):
        open_store("oracle://x@y/z")
    with pytest.raises(StoreError, match="cannot open the store"):
        open_store("postgresql+psycopg://nobody@127.0.0.1:1/none")


def test_a_feed_entry_read_back_keeps_its_identity(store: Store) -> None:
    """A paper known by its DOI or guid is still that (not a title) when read from the store:
    `ident`, and no matching by title, survive the round trip."""
    from digest.models import Snapshot

    entry_paper = Paper(title="Editorial: Weekly Update", abstract="News.",
                        ident="guid:jes-editorial-2026-11")
    research = Paper(title="A Study of Tides", abstract="Tides.")
    snapshot = Snapshot(path="journal.rss", source="journal", sha256="f" * 64,
                        captured_at=datetime(2026, 3, 13, tzinfo=UTC),
                        listings=listed(entry_paper, research))
    result, _ = store.ingest(snapshot, now=datetime(2026, 3, 13, 8, tzinfo=UTC))
    assert result.digest is not None
    back = {p.key: p.paper for p in store.digest_papers(result.digest.name)}
    assert back["guid:jes-editorial-2026-11"].ident == "guid:jes-editorial-2026-11"
    assert not back["guid:jes-editorial-2026-11"].matches_by_title
    assert back[research.key].ident is None and back[research.key].matches_by_title


def test_bulk_inserts_keep_every_value_as_given(store: Store) -> None:
    """Issue 12: papers go in as one batch (COPY on PostgreSQL): tabs, backslashes, `\\N`,
    quotes, non-ASCII, dates and empty values come back exactly as they went in."""
    tricky = Paper(title="Tabs\tand \\N and \\ back\\slashes: «MedS³»",
                   abstract="Line one\nline two\r\n\"quoted\" 'single' \\. end; NULL \\N",
                   published=datetime(2025, 2, 28).date(), org_handle="lab\\x", org_name="",
                   author_count=0, links=("https://a.example/x\ty",),
                   authors=("Ada \\ Lovelace", "Ω Grace"), page_url=None)
    plain = Paper(title="Plain", abstract="Nothing special.")
    listings = (Listing(tricky, 1, comments=3, upvotes=0), Listing(plain, 2))
    snapshot = Snapshot(path="x.txt", source="test", captured_at=NOW, sha256="c" * 64,
                        listings=listings)
    result, _ = store.ingest(snapshot, now=NOW)
    [digest] = store.digests()
    back = store.digest_papers(digest.name)
    assert result.new == 2
    for sent, got in zip(listings, back, strict=True):
        for field in ("title", "abstract", "published", "org_handle", "org_name", "author_count",
                      "links", "authors", "page_url"):
            assert getattr(got.paper, field) == getattr(sent.paper, field), field
        assert (got.rank, got.comments, got.upvotes) == (sent.rank, sent.comments, sent.upvotes)


def test_controls_are_dropped_from_every_text_field_row_by_row(store: Store) -> None:
    """Issue 12: one check of a row's text finds the row with nothing to clean; a row with
    something to drop in any one field is cleaned, its neighbours are stored as given."""
    plain = Paper(title="Plain «Títle»\twith tab", abstract="Line\r\nbreak, \x85 and \u2028.",
                  org_handle="lab", org_name="Lab", authors=("Ω Grace", "Ada"),
                  links=("https://b.example/y",), page_url="https://p.example/y")
    dirt = {"title": "\x00", "abstract": "\x07", "org_handle": "\x1f", "org_name": "\x7f",
            "page_url": "\ufffe", "links": "\x0b", "authors": "\ud800"}
    papers = [plain]
    for n, (field, char) in enumerate(dirt.items()):
        renamed = replace(plain, title=f"{plain.title} {n}")
        value = getattr(renamed, field)
        if isinstance(value, tuple):  # the control in the second name or link
            value = (*value[:1], f"{value[-1]}{char}") if len(value) > 1 else (f"{value[0]}{char}",)
        else:
            value = f"{value}{char}"
        papers.append(replace(renamed, **{field: value}))
    snapshot = Snapshot(path="x.txt", source="test", captured_at=NOW, sha256="d" * 64,
                        listings=listed(*papers))
    store.ingest(snapshot, now=NOW)
    [digest] = store.digests()
    back = [p.paper for p in store.digest_papers(digest.name)]
    assert len(back) == len(papers)
    for sent, got in zip(papers, back, strict=True):
        for field in dirt:
            value = getattr(sent, field)
            want = tuple(map(clean, value)) if isinstance(value, tuple) else clean(value)
            assert getattr(got, field) == want, (sent.title, field)
    assert back[0] == plain and back[1].title == plain.title + " 0"  # the NUL dropped


def test_the_stores_clean_check_is_cleans_for_every_character() -> None:
    """`is_clean` (the store's check of a row's text) says what `clean` would do, for every
    code point alone and within text."""
    for code in range(0x110000):
        char = chr(code)
        assert is_clean(char) == (clean(char) == char), hex(code)
        assert is_clean(f"abc{char}é") == (clean(f"abc{char}é") == f"abc{char}é"), hex(code)


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from([*"ab é³Ω\t\n\r", "\x00", "\x0b", "\x1f", "\x7f", "\x85",
                                "\ufffe", "\uffff", "\ud800", "\udfff", "\U0001f600"])))
def test_is_clean_agrees_with_clean(text: str) -> None:
    assert is_clean(text) == (clean(text) == text)


def test_papers_seen_by_title_gain_their_arxiv_ids_in_one_statement(store: Store) -> None:
    """A paper first seen by title gains the arXiv id a later listing shows (an id another
    paper has names that paper); the look-ups already made say which, so a page of re-seen
    papers costs one UPDATE (before: a SELECT and an UPDATE per paper with an id)."""
    by_title = [Paper(title=f"Seen By Title {n}", abstract="A.") for n in range(5)]
    owner = Paper(title="Owner Of The Id", abstract="O.", arxiv_id="2501.00009")
    store.ingest(Snapshot(path="a.txt", source="a", captured_at=NOW, sha256="a" * 64,
                          listings=listed(*by_title, owner)), now=NOW)
    again = [replace(p, arxiv_id=f"2501.0000{n}") for n, p in enumerate(by_title[:4])]
    again.append(replace(by_title[4], arxiv_id="2501.00009"))  # owner's id: owner seen again
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda _conn, _cursor, statement, *_: statements.append(statement))
    result, _ = store.ingest(Snapshot(path="b.txt", source="a", captured_at=NOW,
                                      sha256="b" * 64, listings=listed(*again)), now=NOW)
    assert (result.papers, result.new) == (5, 0)
    assert len([s for s in statements if s.startswith("UPDATE papers")]) == 1
    assert len([s for s in statements if "FROM papers" in s]) <= 4  # the look-ups by identity
    with store.engine.connect() as conn:
        ids = dict(conn.execute(text("SELECT title, arxiv_id FROM papers")).all())
    assert ids == {**{f"Seen By Title {n}": f"2501.0000{n}" for n in range(4)},
                   "Seen By Title 4": None, "Owner Of The Id": "2501.00009"}


def test_a_failed_bulk_insert_raises_sqlalchemys_error(store: Store) -> None:
    """The bulk inserts go to the driver (COPY, or SQLite's executemany of an iterator), and
    a failure there is raised as SQLAlchemy's error of its kind, like every other
    statement's (the CLI and the scheduler report those)."""
    from digest.store import schema
    from digest.store.ingest import bulk_insert

    rows = iter([(1, 1, None, None, None)])  # no such snapshot or paper; no rank
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        bulk_insert(conn, schema.sightings, ("snapshot_id", "paper_id", "rank", "comments",
                                             "upvotes"), rows)


def test_two_ingests_at_once_store_a_paper_once(store_url: str) -> None:
    """Issue 12: the key has no unique index since migration 5, so ingests take the store's
    write lock before their look-ups. A second ingest of the same new paper, started while
    the first is about to commit, waits and finds it known (before: its look-ups ran before
    the lock, it took the paper for new and failed on the unique index)."""
    first, second = open_store(store_url), open_store(store_url)
    paper = Paper(title="Raced Twice", abstract="Once only.")
    found: list[object] = []

    def ingest_again() -> None:
        try:
            found.append(second.ingest(Snapshot(path="b.txt", source="b", captured_at=NOW,
                                                sha256="b" * 64, listings=listed(paper)))[0])
        except Exception as exc:  # noqa: BLE001 - the test reports it
            found.append(exc)

    racer = threading.Thread(target=ingest_again)

    def meanwhile(*_: object) -> None:  # inside the first ingest's transaction
        racer.start()
        time.sleep(1.0)  # the second is waiting for the lock by now

    try:
        result, _ = first.ingest(Snapshot(path="a.txt", source="a", captured_at=NOW,
                                          sha256="a" * 64, listings=listed(paper)),
                                 prepare=meanwhile)
        racer.join(20)
        assert result.new == 1
        assert len(found) == 1 and not isinstance(found[0], Exception), found
        assert getattr(found[0], "new", None) == 0
        assert first.counts()["papers"] == 1 and first.counts()["sightings"] == 2
    finally:
        first.close()
        second.close()


def test_new_paper_ids_are_taken_before_the_insert_and_nothing_is_read_back(
        store_url: str) -> None:
    """Issue 12: an ingest takes its new papers' ids before inserting them (PostgreSQL
    reserves them from the sequence, SQLite takes those after the largest, as it would
    itself) and inserts them with their rows, so it reads nothing back after the insert
    (before: a read of every new paper's key and id). The sightings still point at the
    right papers, and the next ingest's papers follow them."""
    store = open_store(store_url)
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda _conn, _cursor, statement, *_: statements.append(statement))
    first = [Paper(title=f"Reserved {n}", abstract="A.") for n in "ABC"]
    later = Paper(title="Reserved D", abstract="D.")
    try:
        store.ingest(Snapshot(path="a.txt", source="a", captured_at=NOW, sha256="a" * 64,
                              listings=listed(*first)), now=NOW)
        [taken] = [i for i, s in enumerate(statements) if "setval" in s or "max(papers.id)" in s]
        assert not [s for s in statements[taken + 1:] if "FROM papers" in s]
        store.ingest(Snapshot(path="b.txt", source="b", captured_at=NOW, sha256="b" * 64,
                              listings=listed(later, first[2])), now=NOW)
        with store.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT s.snapshot_id, s.rank, p.id, p.title FROM sightings s "
                "JOIN papers p ON p.id = s.paper_id ORDER BY s.snapshot_id, s.rank")).all()
        assert [tuple(row) for row in rows] == [
            (1, 1, 1, "Reserved A"), (1, 2, 2, "Reserved B"), (1, 3, 3, "Reserved C"),
            (2, 1, 4, "Reserved D"), (2, 2, 3, "Reserved C")]
    finally:
        store.close()
