"""Live sources against a local HTTP server (127.0.0.1 only): every format, the same paper
across formats, conditional GET, retries, timeouts, failed cycles, the run lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import httpx
import pytest
from conftest import EXAMPLES, FIXTURES
from http_server import FixtureServer, Route

from digest.config import EmailSettings, Settings, SourceSettings
from digest.errors import StoreError
from digest.pipeline import ingest, prepare, run_cycle
from digest.publish.feeds import paper_guid
from digest.sources.detect import detect
from digest.sources.files import read_snapshot
from digest.store import Store, open_store
from digest.store.lock import cycle_lock

SOURCES = FIXTURES / "sources"
NOW = datetime(2026, 3, 13, 8, 0, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[FixtureServer]:
    with FixtureServer() as fixture_server:
        yield fixture_server


def settings_for(tmp_path: Path, *sources: SourceSettings, **extra: object) -> Settings:
    return Settings(db_url=f"sqlite:///{tmp_path / 'live.sqlite3'}", out_dir=tmp_path / "out",
                    sources=sources, email=EmailSettings(), **extra)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'live.sqlite3'}")
    yield opened
    opened.close()


def cycle(store: Store, settings: Settings, **options: object):  # type: ignore[no-untyped-def]
    client = httpx.Client(timeout=options.pop("timeout", 5.0))  # type: ignore[arg-type]
    try:
        return run_cycle(store, settings, options.pop("now", NOW), client=client,  # type: ignore[arg-type]
                         sleep=lambda _: None, lock_wait=0.5, **options)  # type: ignore[arg-type]
    finally:
        client.close()


@pytest.mark.parametrize(("name", "fmt"), [
    ("daily_papers.json", "hf-json"), ("papers.html", "hf-html"), ("arxiv_api.xml", "arxiv"),
    ("arxiv_rss.xml", "arxiv"), ("journal.rss", "feed"),
])
def test_format_detection(name: str, fmt: str) -> None:
    assert detect((SOURCES / name).read_bytes()) == fmt
    assert detect((EXAMPLES / "2026-03-11.txt").read_bytes()) == "dailypage"
    assert detect(b'{"x": 1}', "application/json") == "hf-json"


def test_every_format_yields_the_same_papers() -> None:
    def listings(name: str):  # type: ignore[no-untyped-def]
        return read_snapshot(SOURCES / name, NOW, NOW).listings

    def papers(name: str):  # type: ignore[no-untyped-def]
        return [listing.paper for listing in listings(name)]

    from_json, from_html = listings("daily_papers.json"), listings("papers.html")
    assert from_json == from_html
    first = from_json[0]
    sheep = first.paper
    assert (sheep.arxiv_id, first.rank, first.upvotes, first.comments, sheep.org_name) == (
        "2603.01234", 1, 41, 3, "Example Vision Lab")
    assert sheep.authors == ("Mira Okafor", "Tomás Lindqvist")  # the hidden author is left out
    assert sheep.links[0] == "https://github.com/example-vision/counting-sheep"
    assert "\n" not in sheep.abstract
    api = papers("arxiv_api.xml")
    assert [p.key for p in api] == ["arxiv:2603.01234", "arxiv:hep-th/9901001"]
    assert api[0].title == sheep.title and api[0].url == "https://arxiv.org/abs/2603.01234"
    rss = papers("arxiv_rss.xml")
    assert [(p.key, p.update) for p in rss] == [
        ("arxiv:2603.05555", False), ("arxiv:2511.00042", True), ("arxiv:2603.01234", True)]
    assert rss[0].authors == ("Ada Fold", "Ben Crease")
    journal = papers("journal.rss")
    assert [p.key for p in journal] == ["doi:10.1234/jes.2026.0042", "guid:jes-editorial-2026-11"]
    assert journal[0].title == "Tidal Patterns in <Estuaries> & Deltas"
    assert "<" not in journal[0].abstract and "alert" not in journal[0].abstract


def test_a_paper_seen_by_title_keeps_its_identity_when_its_arxiv_id_appears(
        tmp_path: Path, server: FixtureServer, store: Store) -> None:
    settings = settings_for(tmp_path, SourceSettings("hf", server.url("/api/daily_papers")))
    list(ingest(store, settings, prepare([EXAMPLES], None, NOW), NOW))
    feed_before = feedparser.parse((settings.out_dir / "atom.xml").read_bytes())
    sheep_id = paper_guid("title:counting sheep why vision language models cannot count beyond seven")
    assert sheep_id in [e.id for e in feed_before.entries]
    server.routes["/api/daily_papers"] = Route((SOURCES / "daily_papers.json").read_bytes(),
                                               "application/json")
    report = cycle(store, settings, now=datetime(2026, 3, 14, 8, tzinfo=UTC), send=False)
    assert report.ok and report.new == 1  # only the protein paper is new
    assert report.digest and [p.paper.title for p in store.digest_papers(report.digest.name)] == [
        "Sparse Autoencoders for <Protein> & Ligand Interfaces"]
    (key, arxiv_id), = {(p.key, p.paper.arxiv_id) for d in store.digests()
                        for p in store.digest_papers(d.name)
                        if p.paper.title.startswith("Counting Sheep")}
    assert key.startswith("title:") and arxiv_id == "2603.01234"
    feed_after = feedparser.parse((settings.out_dir / "atom.xml").read_bytes())
    assert sheep_id in [e.id for e in feed_after.entries]
    assert len({e.id for e in feed_after.entries}) == len(feed_after.entries)


def test_conditional_get_304_is_no_new_snapshot(tmp_path: Path, server: FixtureServer,
                                                store: Store) -> None:
    server.routes["/rss"] = Route((SOURCES / "arxiv_rss.xml").read_bytes(),
                                  "application/rss+xml", etag='"v1"')
    settings = settings_for(tmp_path, SourceSettings("arxiv", server.url("/rss")))
    first = cycle(store, settings, send=False)
    assert first.ok and first.new == 1 and first.fetched == {"arxiv": 1}
    second = cycle(store, settings, send=False, now=datetime(2026, 3, 14, 8, tzinfo=UTC))
    assert second.ok and second.fetched == {"arxiv": 0} and second.digest is None
    assert server.hits[-1].headers.get("if-none-match") == '"v1"' and server.hits[-1].status == 304
    assert server.hits[0].headers["user-agent"].startswith("paper-digest/")
    with store.read() as tx:
        statuses = tx.fetches.statuses("arxiv")
    assert statuses == [200, 304]


def test_5xx_is_retried_then_succeeds(tmp_path: Path, server: FixtureServer, store: Store) -> None:
    server.routes["/api"] = Route((SOURCES / "daily_papers.json").read_bytes(), "application/json",
                                  failures=[503, 502])
    report = cycle(store, settings_for(tmp_path, SourceSettings("hf", server.url("/api"))),
                   send=False)
    assert report.ok and report.new == 2
    assert [h.status for h in server.hits] == [503, 502, 200]


@pytest.mark.parametrize(("route", "reason"), [
    (Route(b"[]", "application/json"), "no papers in this hf-json snapshot"),
    (Route(b"", failures=[500, 500, 500, 500]), "HTTP 500 after 4 tries"),
    (Route(b"", failures=[404]), "HTTP 404: the server refused the request"),
    (Route(b"[]", "application/json", delay=1.5), "timed out after 4 tries"),
])
def test_failed_fetches_fail_the_cycle_and_ingest_nothing(
        tmp_path: Path, server: FixtureServer, store: Store, route: Route, reason: str) -> None:
    server.routes["/api"] = route
    alerts_to = "ops@example.org"
    settings = settings_for(tmp_path, SourceSettings("hf", server.url("/api")),
                            alerts_email=alerts_to)
    report = cycle(store, settings, timeout=0.5)
    assert not report.ok and report.failures[0][0] == "hf" and reason in report.failures[0][1]
    assert store.counts()["snapshots"] == 0
    (alert,) = (tmp_path / "out/outbox/alerts").glob("*.eml")
    assert b"source hf failed" in alert.read_bytes()
    cycle(store, settings, timeout=0.5)  # the same day: no second alert
    assert len(list((tmp_path / "out/outbox/alerts").glob("*.eml"))) == 1
    with store.read() as tx:
        assert [c.status for c in tx.cycles.history()] == ["failed", "failed"]


def test_one_digest_for_all_sources_each_paper_once(tmp_path: Path, server: FixtureServer,
                                                    store: Store) -> None:
    server.routes["/api"] = Route((SOURCES / "daily_papers.json").read_bytes(), "application/json")
    server.routes["/rss"] = Route((SOURCES / "arxiv_api.xml").read_bytes(), "application/atom+xml")
    server.routes["/journal"] = Route((SOURCES / "journal.rss").read_bytes(), "application/rss+xml")
    settings = settings_for(tmp_path, SourceSettings("hf", server.url("/api")),
                            SourceSettings("arxiv", server.url("/rss")),
                            SourceSettings("journal", server.url("/journal"), "feed"))
    report = cycle(store, settings, send=False)
    assert report.ok and report.digest and report.digest.paper_count == 5
    papers = store.digest_papers(report.digest.name)
    assert [(p.source, p.paper.title[:20]) for p in papers] == [
        ("hf", "Counting Sheep: Why "), ("hf", "Sparse Autoencoders "),
        ("arxiv", "An Old-Style Identif"),
        ("journal", "Tidal Patterns in <E"), ("journal", "Editorial: Weekly Up")]
    page = (settings.out_dir / "digests" / f"{report.digest.name}.html").read_text()
    assert page.index(">hf<") < page.index(">arxiv<") < page.index(">journal<")
    # `digest history` credits every source's snapshot with the digest its papers went into.
    assert {(h.source, h.digest) for h in store.history()} == {
        ("hf", report.digest.name), ("arxiv", report.digest.name), ("journal", report.digest.name)}
    again = cycle(store, settings, send=False, now=datetime(2026, 3, 13, 9, tzinfo=UTC))
    assert again.ok and again.new == 0 and store.counts()["digests"] == 1


def test_folder_source_takes_new_files_in_capture_order(tmp_path: Path, store: Store) -> None:
    folder = tmp_path / "captures"
    folder.mkdir()
    for name in ("2026-03-12.txt", "2026-03-11.txt"):
        (folder / name).write_bytes((EXAMPLES / name).read_bytes())
    settings = settings_for(tmp_path, SourceSettings("captures", str(folder)))
    first = cycle(store, settings, send=False)
    assert [r.captured_at.date().isoformat() for r in first.results] == ["2026-03-11", "2026-03-12"]
    (folder / "2026-03-13.txt").write_bytes((EXAMPLES / "2026-03-13.txt").read_bytes())
    second = cycle(store, settings, send=False, now=datetime(2026, 3, 13, 9, tzinfo=UTC))
    assert [r.path for r in second.results] == [str(folder / "2026-03-13.txt")]


def test_a_late_snapshot_fails_its_source_with_the_capture_order_rule(tmp_path: Path,
                                                                     store: Store) -> None:
    """`digest run` refuses a snapshot older than the store's newest as `digest ingest` does,
    in the same words, but as that source's failure: the others still make the digest."""
    late, fresh = tmp_path / "late", tmp_path / "fresh"
    for folder in (late, fresh):
        folder.mkdir()
    given = [read_snapshot(EXAMPLES / "2026-03-12.txt", None, NOW)]
    assert run_cycle(store, settings_for(tmp_path), NOW, given=given, send=False).new
    (late / "2026-03-11.txt").write_bytes((EXAMPLES / "2026-03-11.txt").read_bytes())
    (fresh / "2026-03-13.txt").write_bytes((EXAMPLES / "2026-03-13.txt").read_bytes())
    report = cycle(store, settings_for(tmp_path, SourceSettings("late", str(late)),
                                       SourceSettings("fresh", str(fresh))), send=False)
    assert report.failures == [("late", f"{late / '2026-03-11.txt'}: captured 2026-03-11 00:00 "
                                "but the store already holds a snapshot from 2026-03-12 00:00; "
                                "snapshots must be ingested in capture order — take it out of the "
                                "source's folder: old captures go in with `digest ingest` before "
                                "the live sources start, or into a store of their own")]
    assert report.digest is not None and report.fetched == {"fresh": 1}


def test_an_archive_ingested_first_stays_quiet_beside_a_newer_source(tmp_path: Path,
                                                                   store: Store) -> None:
    """README's advice for a folder of old captures next to a live source: `digest ingest`
    it first; the folder source then passes over its captures, however new the store is."""
    archive, live = tmp_path / "archive", tmp_path / "live"
    for folder in (archive, live):
        folder.mkdir()
    for day in ("2026-03-11", "2026-03-12"):
        (archive / f"{day}.txt").write_bytes((EXAMPLES / f"{day}.txt").read_bytes())
    given = [read_snapshot(path, None, NOW) for path in sorted(archive.iterdir())]
    assert run_cycle(store, settings_for(tmp_path), NOW, given=given, send=False).new
    (live / "2026-03-13.txt").write_bytes((EXAMPLES / "2026-03-13.txt").read_bytes())
    settings = settings_for(tmp_path, SourceSettings("archive", str(archive)),
                            SourceSettings("live", str(live)))
    for _ in range(2):
        report = cycle(store, settings, send=False)
        assert report.failures == []
    assert store.newest_capture() is not None and f"{store.newest_capture():%d}" == "13"


def test_an_unchanged_file_source_is_hashed_not_parsed(tmp_path: Path, store: Store,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A steady cycle over a file source reads and hashes the bytes it already holds, and
    parses nothing."""
    import digest.collect

    folder = tmp_path / "captures"
    folder.mkdir()
    (folder / "2026-03-11.txt").write_bytes((EXAMPLES / "2026-03-11.txt").read_bytes())
    settings = settings_for(tmp_path, SourceSettings("captures", str(folder)))
    assert cycle(store, settings, send=False).new == 7
    parsed: list[Path] = []
    real = digest.collect.read_snapshot
    monkeypatch.setattr(digest.collect, "read_snapshot",
                        lambda file, *a, **k: parsed.append(file) or real(file, *a, **k))
    steady = cycle(store, settings, send=False, now=datetime(2026, 3, 13, 9, tzinfo=UTC))
    assert steady.ok and steady.new == 0 and parsed == []
    (folder / "2026-03-12.txt").write_bytes((EXAMPLES / "2026-03-12.txt").read_bytes())
    assert cycle(store, settings, send=False, now=datetime(2026, 3, 13, 10, tzinfo=UTC)).new == 3
    assert parsed == [folder / "2026-03-12.txt"]


def test_run_lock_one_cycle_at_a_time_and_a_killed_holder_releases_it(
        tmp_path: Path, store: Store) -> None:
    url = store.url
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from digest.store import open_store; "
         "from digest.store.lock import cycle_lock; s = open_store(sys.argv[1]);\n"
         "with cycle_lock(s):\n    print('held', flush=True); time.sleep(60)", url],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout and holder.stdout.readline().strip() == "held"
    with pytest.raises(StoreError, match="another cycle is running on this store"), \
            cycle_lock(store, wait=0.3):
        pass
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    with cycle_lock(store, wait=2.0):
        assert (Path(url.removeprefix("sqlite:///")).with_suffix(".sqlite3.lock")).exists()


def test_run_lock_on_postgres(pg_url: str) -> None:
    first, second = open_store(pg_url), open_store(pg_url)
    try:
        with cycle_lock(first):
            with pytest.raises(StoreError, match="another cycle"), cycle_lock(second, wait=0.3):
                pass
        start = time.monotonic()
        with cycle_lock(second, wait=2.0):
            assert time.monotonic() - start < 2.0
    finally:
        first.close()
        second.close()


def test_run_locks_of_two_stores_in_one_postgres_database_are_apart(
        pg_url: str, other_pg_url: str) -> None:
    """Two stores in one database (two schemas) run their cycles side by side: the advisory
    lock is keyed by the store's schema, not one key for the whole server."""
    first, second = open_store(pg_url), open_store(other_pg_url)
    try:
        with cycle_lock(first), cycle_lock(second, wait=0.3):
            pass
    finally:
        first.close()
        second.close()


def test_run_command_output_and_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from digest.cli.main import main

    folder = tmp_path / "captures"
    folder.mkdir()
    (folder / "2026-03-11.txt").write_bytes((EXAMPLES / "2026-03-11.txt").read_bytes())
    (tmp_path / "digest.toml").write_text(
        f'[[sources]]\nname = "captures"\nlocation = "{folder}"\n'
        f'[[sources]]\nname = "gone"\nlocation = "{tmp_path / "nowhere"}"\n')
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["run", "--no-send"], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[:2] == ["captures: 1 new snapshot",
                                              "2026-03-11  7 new  → out/digests/2026-03-11.md"]
    assert result.stderr == (f"gone: failed: {tmp_path / 'nowhere'}: no such file or folder — fix "
                             "sources.location for 'gone'\n")
    result = CliRunner().invoke(main, ["run", "--source", "captures"], catch_exceptions=False)
    assert result.exit_code == 0 and result.stdout.splitlines()[0] == "captures: 0 new snapshots"
    result = CliRunner().invoke(main, ["run", "--source", "nope"], catch_exceptions=False)
    assert result.exit_code == 2 and result.stderr.startswith("error: sources: no source named 'nope'")


def test_two_runs_at_once_one_wins_nothing_doubled(tmp_path: Path, server: FixtureServer) -> None:
    # A slow source keeps the first run inside its cycle for longer than the second one
    # waits for the lock (10 s).
    server.routes["/api"] = Route((SOURCES / "daily_papers.json").read_bytes(), "application/json",
                                  delay=12.5)
    (tmp_path / "digest.toml").write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "two.sqlite3"}"\n[output]\ndir = "{tmp_path / "out"}"\n'
        f'[[sources]]\nname = "hf"\nlocation = "{server.url("/api")}"\n')
    command = [sys.executable, "-m", "digest", "--config", str(tmp_path / "digest.toml"), "run"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    time.sleep(0.8)
    runs.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [run.communicate(timeout=60) for run in runs]
    codes = sorted(run.returncode for run in runs)
    assert codes == [0, 2], outputs  # whichever started its cycle first wins
    loser = outputs[[run.returncode for run in runs].index(2)][1]
    assert "another cycle is running on this store" in loser
    store = open_store(f"sqlite:///{tmp_path / 'two.sqlite3'}")
    assert store.counts()["digests"] == 1 and store.counts()["papers"] == 2
    store.close()
