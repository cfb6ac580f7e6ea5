"""Issue 8, item 7: watching a search (the HF papers search API and the search page, told
apart from their bytes), page text served over http, and `digest config check`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, FIXTURES
from http_server import FixtureServer, Route

from digest.cli.config import example_config
from digest.cli.main import main
from digest.config import EmailSettings, Settings, SourceSettings
from digest.pipeline import run_cycle
from digest.sources.detect import detect
from digest.store import Store, open_store

SOURCES = FIXTURES / "sources"
NOW = datetime(2026, 3, 13, 8, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'watch.sqlite3'}")
    yield opened
    opened.close()


def cycle(store: Store, tmp_path: Path, source: SourceSettings, now: datetime = NOW):  # type: ignore[no-untyped-def]
    settings = Settings(db_url=store.url, out_dir=tmp_path / "out", sources=(source,),
                        email=EmailSettings())
    with httpx.Client(timeout=5.0) as client:
        return run_cycle(store, settings, now, client=client, sleep=lambda _: None,
                         lock_wait=0.5, send=False)


def test_watch_a_topic_through_the_search_api_then_the_search_page(
        tmp_path: Path, server: FixtureServer, store: Store) -> None:
    api = "/api/papers/search?q=slow+thinking"
    page = "/papers?q=slow+thinking"
    server.routes[api] = Route((SOURCES / "papers_search.json").read_bytes(), "application/json")
    server.routes[page] = Route((SOURCES / "papers_search.html").read_bytes(), "text/html")
    assert detect((SOURCES / "papers_search.json").read_bytes()) == "hf-json"
    assert detect((SOURCES / "papers_search.html").read_bytes()) == "hf-html"
    first = cycle(store, tmp_path, SourceSettings("slow-thinking", server.url(api)))
    assert first.ok and first.digest
    papers = store.digest_papers(first.digest.name)
    assert [(p.key, p.upvotes, p.comments) for p in papers] == [
        ("arxiv:2410.23743", 63, 4), ("arxiv:2502.12345", 12, 0)]
    assert papers[0].paper.org_name == "University of Maryland"
    # The same watch through the search page: only the paper never seen is new.
    later = cycle(store, tmp_path, SourceSettings("slow-thinking", server.url(page)),
                  datetime(2026, 3, 14, 8, tzinfo=UTC))
    assert later.ok and later.digest and later.new == 1
    assert [p.paper.title for p in store.digest_papers(later.digest.name)] == [
        "Slow Thinking Budgets for Agents"]


def test_page_text_served_over_http_is_read_as_captured_when_fetched(
        tmp_path: Path, server: FixtureServer, store: Store) -> None:
    server.routes["/capture.txt"] = Route((EXAMPLES / "2026-03-13.txt").read_bytes(),
                                          "text/plain; charset=utf-8")
    report = cycle(store, tmp_path, SourceSettings("text", server.url("/capture.txt")))
    assert report.ok and report.new > 0
    assert [r.captured_at for r in report.results] == [NOW]


def test_config_check_reports_every_problem(tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text(
        '[site]\nfeed_size = 0\nbase_url = "papers.example.org"\n'
        '[schedule]\ntimezone = "Mars/Olympus"\n'
        '[[sources]]\nname = "ftp"\nlocation = "ftp://example.org/papers.json"\n'
        '[[sources]]\nname = "gone"\nlocation = "no-such-folder"\n')
    result = CliRunner().invoke(main, ["config", "check"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: digest.toml: site.base_url: 'papers.example.org' is not an http(s) URL — set it "
        "like https://papers.example.org",
        "error: digest.toml: site.feed_size: 0 is not a positive whole number — set it like "
        "feed_size = 200 under [site]",
        "error: digest.toml: schedule.timezone: 'Mars/Olympus' is not a time zone — use a name "
        "like UTC or Europe/Paris",
        "error: digest.toml: sources[1].location: 'ftp://example.org/papers.json': ftp:// is not "
        "supported — use a file, a folder or an http(s) URL",
        "error: digest.toml: sources[2].location: 'no-such-folder': no such file or folder — "
        "create it, or fix the path",
    ]
    (tmp_path / "digest.toml").write_text(
        '[[sources]]\nname = "gone"\nlocation = "no-such-folder"\n')
    result = CliRunner().invoke(main, ["config", "check"])
    assert result.exit_code == 2
    assert result.stderr == ("error: digest.toml: sources[1].location: 'no-such-folder': no such "
                             "file or folder — create it, or fix the path\n")


def test_the_init_example_shows_how_to_watch_a_topic() -> None:
    example = example_config()
    assert "/api/papers/search?q=" in example and "papers?q=" in example
