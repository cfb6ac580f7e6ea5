"""arXiv enrichment (issue 11 §1): a title seen without an id is looked up by exact title on a
local server answering in the arXiv API's format; hits, misses, a timeout and the budget."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, FIXTURES, ROOT
from http_server import FixtureServer, Route

from digest.cli.main import main
from digest.config import EnrichSettings, Settings, SourceSettings
from digest.enrich import enrich, parse_answer, request_params
from digest.pipeline import run_cycle
from digest.publish.render import paper_view
from digest.sources.files import read_snapshot
from digest.store import Store, open_store

NOW = datetime(2026, 3, 13, 9, tzinfo=UTC)
SHARED_FORMATS = ROOT.parent / "shared" / "formats"
SHEEP = "Counting Sheep: Why Vision-Language Models Cannot Count Beyond Seven"


def titles_to_look_up_in(store: Store, now: datetime) -> list[tuple[str, str]]:
    with store.read() as tx:
        return tx.enrichment.to_look_up(now)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    opened.ingest(read_snapshot(EXAMPLES / "2026-03-13.txt", None, NOW), now=NOW)
    yield opened
    opened.close()


@pytest.fixture
def server() -> Iterator[FixtureServer]:
    with FixtureServer() as running:
        yield running


def _route(server: FixtureServer, titles: list[str], route: Route) -> None:
    """Serve `route` for the exact request the client makes for `titles`."""
    url = httpx.URL(server.url("/api/query"), params=request_params(titles))
    server.routes[url.raw_path.decode()] = route


def _settings(server: FixtureServer, **extra: int) -> EnrichSettings:
    return EnrichSettings(api_url=server.url("/api/query"), **extra)  # type: ignore[arg-type]


def test_a_hit_gives_the_id_and_authors_and_misses_are_cached(store: Store,
                                                             server: FixtureServer) -> None:
    pending = titles_to_look_up_in(store, NOW)
    titles = [title for _, title in pending]
    assert SHEEP in titles and len(titles) == 5
    _route(server, titles, Route((FIXTURES / "sources/arxiv_api.xml").read_bytes(),
                                 "application/atom+xml"))
    before = {p.key for p in store.digest_papers("2026-03-13")}
    report = enrich(store, _settings(server), NOW, sleep=lambda s: None)
    assert (report.asked, report.hits, report.gained, report.left, report.errors) == (5, 1, 1, 0, [])
    query = server.hits[0].path
    assert "search_query=ti%3A%22Counting+Sheep+Why" in query and "+OR+ti%3A%22" in query
    papers = {p.paper.title: p for p in store.digest_papers("2026-03-13")}
    sheep = papers[SHEEP]
    assert sheep.paper.arxiv_id == "2603.01234" and sheep.paper.authors[:2] == ("Mira Okafor",
                                                                               "Tomás Lindqvist")
    assert {p.key for p in papers.values()} == before  # keys (and feed ids) never change
    view = paper_view(sheep)
    assert view.url == "https://huggingface.co/papers/2603.01234" and not view.url_is_search
    assert [link.label for link in view.links][:2] == ["arXiv", "PDF"]
    assert "Mira Okafor" in view.authors
    # Cached: nothing is asked again, until a miss is a week old.
    assert enrich(store, _settings(server), NOW, sleep=lambda s: None).asked == 0
    later = NOW + timedelta(days=8)
    assert [title for _, title in titles_to_look_up_in(store, later)] == [x for x in titles if x != SHEEP]
    with store.read() as tx:
        cached = {found.title_key: found.arxiv_id for found in tx.enrichment.cached()}
    assert len(cached) == 5 and sorted(v for v in cached.values() if v) == ["2603.01234"]


def test_a_timeout_ends_within_the_budget_and_records_nothing(store: Store,
                                                             server: FixtureServer) -> None:
    titles = [title for _, title in titles_to_look_up_in(store, NOW)]
    _route(server, titles, Route(b"", delay=5.0))
    started = time.monotonic()
    report = enrich(store, _settings(server, budget=2), NOW)
    assert time.monotonic() - started < 3.0
    assert report.errors and "timed out" in report.errors[0].lower() and report.left == 5
    assert len(titles_to_look_up_in(store, NOW)) == 5  # nothing cached: asked again next cycle


def test_an_error_answer_is_reported_not_raised(store: Store, server: FixtureServer) -> None:
    titles = [title for _, title in titles_to_look_up_in(store, NOW)]
    _route(server, titles, Route(b"", failures=[503]))
    report = enrich(store, _settings(server), NOW, sleep=lambda s: None)
    assert report.errors and "503" in report.errors[0] and report.gained == 0


def test_requests_are_three_seconds_apart_and_stop_at_the_budget(store: Store,
                                                                 server: FixtureServer) -> None:
    titles = [title for _, title in titles_to_look_up_in(store, NOW)]
    for title in titles:
        _route(server, [title], Route(b'<feed xmlns="http://www.w3.org/2005/Atom"></feed>',
                                      "application/atom+xml"))
    clock = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    report = enrich(store, _settings(server, batch=1, budget=7), NOW, clock=lambda: clock[0],
                    sleep=sleep)
    assert report.requests == 3 and report.asked == 3 and report.left == 2
    assert sleeps == [0.0, 3.0, 3.0]


@pytest.mark.skipif(not SHARED_FORMATS.is_dir(), reason="../shared/formats not present")
def test_real_arxiv_api_answers_parse() -> None:
    def shared(name: str) -> bytes:
        return (SHARED_FORMATS / f"arxiv_api_id_{name}.xml").read_bytes()

    one = parse_answer(shared("2104.12255v1_s0_m100_6ae69987ffe1"))
    assert [(f.arxiv_id, f.title, f.authors) for f in one] == [
        ("2104.12255", "0", ("Quan Thoi Minh Nguyen",))]
    assert parse_answer(shared("0000.0000_s0_m100_8b51d9633a68")) == []
    old = parse_answer(shared("astro-ph_0601001_s0_m100_3150dca9dc76"))
    assert [f.arxiv_id for f in old] == ["astro-ph/0601001"]




@pytest.mark.parametrize("answer", ["hit", "timeout"])
def test_a_cycle_enriches_its_digest_within_the_budget(tmp_path: Path, server: FixtureServer,
                                                       answer: str) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'd.sqlite3'}")
    snapshot = read_snapshot(EXAMPLES / "2026-03-13.txt", None, NOW)
    titles = [n.paper.title for n in snapshot.listings]
    body = (FIXTURES / "sources/arxiv_api.xml").read_bytes()
    _route(server, titles, Route(body, "application/atom+xml", delay=5.0 if answer == "timeout" else 0))
    settings = Settings(db_url=store.url, out_dir=tmp_path / "out",
                        sources=(SourceSettings("page", str(EXAMPLES / "2026-03-13.txt")),),
                        enrich=EnrichSettings(api_url=server.url("/api/query"), budget=2))
    started = time.monotonic()
    report = run_cycle(store, settings, NOW, send=False)
    assert time.monotonic() - started < 4.0 and report.ok and report.enriched is not None
    md = (tmp_path / "out/digests/2026-03-13.md").read_text()
    if answer == "hit":
        assert report.enriched.gained == 1
        assert "](<https://huggingface.co/papers/2603.01234>)" in md and "Mira Okafor" in md
    else:
        assert report.enriched.errors and "huggingface.co/papers/2603.01234" not in md
        assert "(arXiv search)" in md  # the digest went out, with its searches
    store.close()


def test_the_enrich_and_ingest_commands(tmp_path: Path, server: FixtureServer,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """`digest ingest` enriches only with --enrich; `digest enrich` backfills and re-renders."""
    snapshot = EXAMPLES / "2026-03-13.txt"
    titles = [n.paper.title for n in read_snapshot(snapshot, None, NOW).listings]
    _route(server, titles, Route((FIXTURES / "sources/arxiv_api.xml").read_bytes(),
                                 "application/atom+xml"))
    monkeypatch.setenv("DIGEST_ENRICH_API_URL", server.url("/api/query"))
    monkeypatch.setenv("DIGEST_ENRICH_ARXIV", "true")
    runner = CliRunner()
    done = runner.invoke(main, ["ingest", str(snapshot)], catch_exceptions=False)
    assert done.exit_code == 0 and server.hits == []  # no --enrich: nothing asked
    md = tmp_path / "out/digests/2026-03-13.md"
    assert "huggingface.co/papers/2603.01234" not in md.read_text()
    done = runner.invoke(main, ["enrich"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert "5 titles in 1 request, 1 found, 1 paper gained an id" in done.output
    assert "huggingface.co/papers/2603.01234" in md.read_text()  # re-rendered
    again = runner.invoke(main, ["enrich"], catch_exceptions=False)
    assert "0 titles in 0 requests" in again.output and len(server.hits) == 1
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    monkeypatch.chdir(fresh)
    done = runner.invoke(main, ["ingest", "--enrich", str(snapshot)], catch_exceptions=False)
    assert done.exit_code == 0 and len(server.hits) == 2
    assert "huggingface.co/papers/2603.01234" in (fresh / "out/digests/2026-03-13.md").read_text()
