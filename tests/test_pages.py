"""The web pages lead somewhere (issue 11 §6): previous/next digests, the paper page's title,
authors, links and rank chart, a styled 404, subscription pages that link back, "Saved"."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import EXAMPLES
from starlette.testclient import TestClient

from digest.config import EmailSettings, Settings
from digest.mail import subscribers as book
from digest.mail.tokens import preferences_token
from digest.models import Sighting
from digest.pipeline import ingest, prepare
from digest.publish.chart import history_chart
from digest.publish.site import Site
from digest.store import Store, open_store
from digest.web.app import create_app

SECRET = "pages-test-secret-0123456789abcdef"
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Store, TestClient]]:
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'p.sqlite3'}", out_dir=tmp_path / "out",
                        site=Site(), email=EmailSettings(secret=SECRET, from_address="p@example.org"))
    store = open_store(settings.db_url)
    list(ingest(store, settings, prepare([EXAMPLES], None, NOW), NOW))
    with TestClient(create_app(store, settings), base_url="https://testserver") as client:
        yield store, client
    store.close()


def test_digest_pages_link_their_neighbours(world: tuple[Store, TestClient]) -> None:
    _, client = world
    middle = client.get("/digests/2026-03-12.html").text
    assert 'href="/digests/2026-03-11.html" rel="prev"' in middle
    assert 'href="/digests/2026-03-13.html" rel="next"' in middle
    assert 'href="/#subscribe"' in middle and 'href="../feed.xml"' in middle
    first = client.get("/digests/2026-03-11.html").text
    assert 'rel="prev"' not in first and 'rel="next"' in first
    contents = re.findall(r'<li><span class="n">(\d+)\.</span> <a href="#p(\d+)">', first)
    assert contents and all(n == p for n, p in contents)  # the list of titles leads to the cards


def test_the_paper_page_shows_its_title_once_and_a_rank_chart(world: tuple[Store, TestClient]) -> None:
    store, client = world
    key = "title:counting sheep why vision language models cannot count beyond seven"
    page = client.get(f"/papers/{key}").text
    assert page.count("Counting Sheep: Why Vision-Language Models") == 2  # <title> and <h1>
    assert "(arXiv search)" in page  # no id: the title leads to a labelled search
    # Real page captures carry no upvotes: the chart shows rank, with dates and values.
    assert "Rank over 2 sightings" in page and "Rank (1 = top)" in page and "Date seen" in page
    assert re.search(r'<text class="tick"[^>]*>03-12</text>', page)
    assert re.search(r'<text class="tick"[^>]*>03-13</text>', page)
    assert len(re.findall(r'<circle class="dot"', page)) == 2


def test_rank_one_is_drawn_at_the_top() -> None:
    seen = [Sighting(captured_at=datetime(2026, 3, d, tzinfo=UTC), source="hf", rank=r,
                     comments=None, upvotes=None) for d, r in ((11, 5), (12, 1))]
    chart = history_chart(seen)
    assert chart is not None and chart.points[1].y < chart.points[0].y
    assert chart.points[1].value == 1 and chart.points[0].date == "03-11"
    assert history_chart(seen[:1]) is None


def test_no_dead_ends(world: tuple[Store, TestClient]) -> None:
    store, client = world
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and "<h1" in missing.text and "<style>" in missing.text
    for path in ("/no/such/page", "/confirm?token=forged", "/unsubscribe?token=forged",
                 "/preferences?token=forged", "/digests/1999-01-01.html"):
        text = client.get(path).text
        assert 'href="/">Back to the archive</a>' in text and 'href="/#subscribe"' in text, path
    ada, _ = book.add(store, "ada@example.org", topics="diffusion")
    token = preferences_token(SECRET, ada.id)
    form = client.get(f"/preferences?token={token}").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    saved = client.post("/preferences", data={"token": token, "topics": "robots, speech",
                                              "csrf": csrf.group(1)})
    assert "Saved: robots, speech" in saved.text and 'value="robots, speech"' in saved.text


def test_static_digest_pages_link_their_neighbours(tmp_path: Path) -> None:
    settings = Settings(db_url=f"sqlite:///{tmp_path / 's.sqlite3'}", out_dir=tmp_path / "out")
    store = open_store(settings.db_url)
    for day in ("2026-03-11", "2026-03-12", "2026-03-13"):  # one at a time, as a daily job does
        list(ingest(store, settings, prepare([EXAMPLES / f"{day}.txt"], None, NOW), NOW))
    pages = {day: (settings.out_dir / f"digests/{day}.html").read_text()
             for day in ("2026-03-11", "2026-03-12", "2026-03-13")}
    assert 'rel="prev"' not in pages["2026-03-11"]
    assert 'href="../digests/2026-03-12.html" rel="next"' in pages["2026-03-11"]
    assert 'href="../digests/2026-03-11.html" rel="prev"' in pages["2026-03-12"]
    assert 'href="../digests/2026-03-13.html" rel="next"' in pages["2026-03-12"]
    assert 'rel="next"' not in pages["2026-03-13"]
    store.close()
