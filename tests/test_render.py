"""Rendered outputs: goldens, escaping of hostile text, the email size budget, stable feeds."""

from __future__ import annotations

import itertools
import random
import re
from datetime import UTC, datetime
from html import unescape
from pathlib import Path

import feedparser
import markdown
import pytest
from conftest import EXAMPLES, FIXTURES, entry, page
from hypothesis import given
from hypothesis import strategies as st

from digest.config import Settings
from digest.models import DigestInfo, Paper, StoredPaper
from digest.outputs import render_all
from digest.pipeline import ingest, prepare
from digest.publish.feeds import build_feeds, paper_guid
from digest.publish.render import EMAIL_BUDGET, most_that_fit, paper_view, render_email
from digest.publish.site import Site
from digest.store import Store, open_store

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
GOLDENS = Path(__file__).resolve().parent / "goldens"


def build(tmp_path: Path, *paths: Path, site: Site | None = None) -> tuple[Store, Settings]:
    store = open_store(f"sqlite:///{tmp_path / 'render.sqlite3'}")
    settings = Settings(db_url=store.url, out_dir=tmp_path / "out", site=site or Site())
    list(ingest(store, settings, prepare(paths, None, NOW), NOW))
    return store, settings


def check_golden(name: str, actual: str, update: bool) -> None:
    golden = GOLDENS / name
    if update:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual)
    assert golden.is_file(), f"missing golden {name}: run pytest --update-goldens and review it"
    assert actual == golden.read_text(), f"{name} differs from its golden (pytest --update-goldens)"


@pytest.mark.parametrize("output", [
    "digests/2026-03-13.md", "digests/2026-03-13.html", "digests/2026-03-13.email.html",
    "digests/2026-03-13.email.txt", "digests/2026-03-11.md", "index.html", "feed.xml", "atom.xml",
])
def test_goldens(tmp_path: Path, output: str, update_goldens: bool) -> None:
    store, settings = build(tmp_path, EXAMPLES)
    check_golden(output.replace("/", "_"), (settings.out_dir / output).read_text(), update_goldens)
    store.close()


def test_goldens_with_a_public_base_url(tmp_path: Path, update_goldens: bool) -> None:
    store, settings = build(tmp_path, EXAMPLES, site=Site(base_url="https://papers.example.org"))
    for output in ("digests/2026-03-12.email.txt", "atom.xml"):
        check_golden("base-url_" + output.replace("/", "_"),
                     (settings.out_dir / output).read_text(), update_goldens)
    store.close()


def test_render_rebuilds_identical_bytes_and_no_new_papers_keeps_feeds(tmp_path: Path) -> None:
    store, settings = build(tmp_path, EXAMPLES)
    out = settings.out_dir
    files = sorted(p for p in out.rglob("*") if p.is_file())
    before = {p: p.read_bytes() for p in files}
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "feed.xml", out / "atom.xml", out / "index.html")}
    render_all(store, settings)
    assert {p: p.read_bytes() for p in files} == before
    # A later snapshot with nothing new writes no digest and leaves the feeds untouched.
    later = tmp_path / "2026-03-14.txt"
    later.write_text((EXAMPLES / "2026-03-13.txt").read_text().replace("\nMar 13\n", "\nMar 14\n"))
    list(ingest(store, settings, prepare([later], None, NOW), NOW))
    assert not (out / "digests" / "2026-03-14.md").exists()
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    assert sorted(p for p in out.rglob("*") if p.is_file()) == files
    store.close()


def test_feeds_parse_back_with_stable_unique_ids(tmp_path: Path) -> None:
    store, settings = build(tmp_path, EXAMPLES)
    for name in ("feed.xml", "atom.xml"):
        parsed = feedparser.parse((settings.out_dir / name).read_bytes())
        assert not parsed.bozo, parsed.get("bozo_exception")
        ids = [e.id for e in parsed.entries]
        assert len(ids) == len(set(ids)) == 13
        assert parsed.entries[0].title.startswith("HyperMesh")
        assert parsed.entries[0].published_parsed[:3] == (2026, 3, 13)
        assert parsed.entries[-1].published_parsed[:3] == (2026, 3, 11)
        assert parsed.feed.updated_parsed[:3] == (2026, 3, 13)
        assert all(e.link for e in parsed.entries)
    # ids depend only on the paper's key: same on a rebuild into a different store.
    (tmp_path / "again").mkdir()
    other, other_settings = build(tmp_path / "again", *sorted(EXAMPLES.glob("*.txt")))
    again = feedparser.parse((other_settings.out_dir / "atom.xml").read_bytes())
    first = feedparser.parse((settings.out_dir / "atom.xml").read_bytes())
    assert [e.id for e in again.entries] == [e.id for e in first.entries]
    assert paper_guid("title:x") == paper_guid("title:x") != paper_guid("title:y")
    store.close()
    other.close()


def test_feed_keeps_the_latest_n(tmp_path: Path) -> None:
    store, settings = build(tmp_path, EXAMPLES)
    rss, _ = build_feeds(settings.site, store.feed_papers(5))
    parsed = feedparser.parse(rss)
    assert len(parsed.entries) == 5 and parsed.entries[-1].title.startswith("Counting Sheep")
    store.close()


def test_hostile_text_is_escaped_everywhere(tmp_path: Path) -> None:
    hostile = tmp_path / "2026-03-13.txt"
    hostile.write_bytes((FIXTURES / "pages" / "hostile.txt").read_bytes())
    store, settings = build(tmp_path, hostile)
    out = settings.out_dir
    for name in ("digests/2026-03-13.html", "digests/2026-03-13.email.html", "index.html"):
        html = (out / name).read_text()
        assert "<script>" not in html
        assert 'href="javascript' not in html
        assert "<b>bold</b>" not in html
        assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f]", html)
    page_html = (out / "digests/2026-03-13.html").read_text()
    assert "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt; &amp; Friends" in page_html
    assert "]]&gt;" in page_html
    assert '<a href="https://example.org/ok?a=1&amp;b=2">' in page_html

    md = (out / "digests/2026-03-13.md").read_text()
    rendered = markdown.markdown(md)
    assert 'href="javascript' not in rendered and "<script>" not in rendered
    assert "<b>" not in rendered and "<img" not in rendered and "<h1>Not a heading" not in rendered
    assert "x\\](javascript:alert(1)) \\[y" in md
    assert '<a href="https://example.org/ok?a=1&amp;b=2">' in rendered

    for name in ("feed.xml", "atom.xml"):
        xml = (out / name).read_bytes()
        parsed = feedparser.parse(xml)
        assert not parsed.bozo, parsed.get("bozo_exception")
        assert b"\x0b" not in xml and b"\x00" not in xml and b"<script>" not in xml
        assert parsed.entries[0].title == '<script>alert("title")</script> & Friends'
        # The summary is HTML holding the abstract as text: no live tag, the text intact.
        summary = parsed.entries[0].summary
        assert "<script>" not in summary and "]]>" in unescape(summary)
    text = (out / "digests/2026-03-13.email.txt").read_text()
    assert "\x0b" not in text and "\x00" not in text and "\x1b" not in text
    store.close()


def _stored(n: int, abstract_len: int) -> list[StoredPaper]:
    first_seen = datetime(2026, 3, 13, tzinfo=UTC)
    words = ("lorem ipsum dolor sit amet " * (abstract_len // 27 + 1))[:abstract_len]
    return [StoredPaper(
        key=f"title:paper {i}",
        paper=Paper(title=f"Paper number {i} with a long and descriptive title " + "x" * (i % 50 + 1),
                    abstract=words, links=(f"https://github.com/example/p{i}",)),
        first_seen=first_seen, digest="2026-03-13", position=i) for i in range(1, n + 1)]


def _title(i: int) -> str:
    return f"Paper number {i} with a long and descriptive title " + "x" * (i % 50 + 1)


def test_email_fits_the_budget_on_a_big_day() -> None:
    info = DigestInfo(name="2026-03-13", captured_at=datetime(2026, 3, 13, tzinfo=UTC),
                      paper_count=500)
    body = render_email(Site(), info, [paper_view(p) for p in _stored(500, 1500)])
    assert len(body.html.encode()) <= EMAIL_BUDGET and len(body.text.encode()) <= EMAIL_BUDGET
    assert body.total == 500 and body.shown < 500
    assert f"{500 - body.shown} more papers in the full digest" in body.html
    assert f"...and {500 - body.shown} more papers in the full digest" in body.text
    # The cards shown are the first papers in page order; titles are never cut.
    for i in range(1, body.shown + 1):
        assert f'id="p{i}"' in body.html and _title(i) in body.html
    assert f'id="p{body.shown + 1}"' not in body.html


def test_a_121_paper_day_lists_every_title_within_the_budget() -> None:
    info = DigestInfo(name="2026-03-13", captured_at=datetime(2026, 3, 13, tzinfo=UTC),
                      paper_count=121)
    body = render_email(Site(), info, [paper_view(p) for p in _stored(121, 1500)])
    assert len(body.html.encode()) <= EMAIL_BUDGET and len(body.text.encode()) <= EMAIL_BUDGET
    contents = body.html.split('<ol class="contents"', 1)[1].split("</ol>", 1)[0]
    text_contents = body.text.split("\n\n\n", 1)[0]
    for i in range(1, 122):
        assert _title(i) in contents and f"{i:3d}. {_title(i)}" in text_contents
    assert body.shown >= 25  # and the first papers as cards besides


def test_the_other_titles_get_what_the_budget_leaves() -> None:
    """Issue 11: a topic subscriber's list of the other papers' titles never pushes out a
    matched card, and stays within the budget; what does not fit is counted."""
    info = DigestInfo(name="2026-03-13", captured_at=datetime(2026, 3, 13, tzinfo=UTC),
                      paper_count=3000)
    views = [paper_view(p) for p in _stored(3000, 200)]
    matched, others = views[:10], views[10:]
    without = render_email(Site(), info, matched, topics=("paper",))
    body = render_email(Site(), info, matched, topics=("paper",), others=others)
    assert len(body.html.encode()) <= EMAIL_BUDGET and len(body.text.encode()) <= EMAIL_BUDGET
    assert body.shown == without.shown == 10
    assert body.text.startswith(without.text.split("--\n", 1)[0])
    listed = body.text.split("Also new today", 1)[1]
    shown = listed.count("\n - ")
    assert 100 < shown < 2990
    assert f"2990 other new papers, not matching your topics (the first {shown} listed here)" in listed
    assert f"...and {2990 - shown} more in the full digest: ../digests/2026-03-13.html" in listed
    assert f" - {_title(11)}\n   ../digests/2026-03-13.html#p11\n" in listed
    assert _title(10) + "\n" not in listed
    # Without topics' others (an empty list) the email is exactly today's.
    assert render_email(Site(), info, matched, topics=("paper",), others=[]) == without


def test_email_opens_with_the_contents_then_short_cards(tmp_path: Path) -> None:
    info = DigestInfo(name="2026-03-13", captured_at=datetime(2026, 3, 13, tzinfo=UTC), paper_count=6)
    body = render_email(Site(base_url="https://p.example.org"), info,
                        [paper_view(p) for p in _stored(6, 1500)])
    assert body.shown == body.total == 6 and "more paper" not in body.html
    assert body.first_title == _title(1)
    contents = body.html.index('<ol class="contents"')
    assert contents < body.html.index('id="p1"')
    assert re.search(r'<a [^>]*href="#p6"[^>]*>Paper number 6 ', body.html)  # a link to its card
    # Cards: the abstract's opening, cut near 300 characters, "more" on the web copy.
    assert "lorem ipsum dolor sit amet " * 12 not in body.html
    assert re.search(r'<a [^>]*href="https://p.example.org/digests/2026-03-13.html#p3"[^>]*>more</a>',
                     body.html)
    assert "more: https://p.example.org/digests/2026-03-13.html#p3" in body.text
    assert 'width="600"' in body.html and "max-width:600px" in body.html
    assert re.search(r'<h2 class="paper-title" style="[^"]*font-size', body.html)  # CSS inlined
    assert 'class="preheader"' in body.html and "display:none" in body.html
    assert "https://p.example.org/feed.xml" in body.html and "https://p.example.org/feed.xml" in body.text
    assert max(len(line) for line in body.text.splitlines()) <= 998


def test_user_templates_override_one_and_keep_the_rest(tmp_path: Path) -> None:
    custom = tmp_path / "mytemplates"
    custom.mkdir()
    (custom / "digest.md").write_text("Custom {{ total }} {{ papers[0].title | md }}\n")
    store = open_store(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    settings = Settings(db_url=store.url, out_dir=tmp_path / "out", templates=str(custom))
    path = tmp_path / "2026-03-13.txt"
    path.write_text(page(entry("A *starred* title")))
    list(ingest(store, settings, prepare([path], None, NOW), NOW))
    assert (settings.out_dir / "digests/2026-03-13.md").read_text() == "Custom 1 A \\*starred\\* title\n"
    assert "A *starred* title" in (settings.out_dir / "digests/2026-03-13.html").read_text()
    store.close()


def test_empty_store_feeds_are_valid(tmp_path: Path) -> None:
    rss, atom = build_feeds(Site(), [])
    assert not feedparser.parse(rss).bozo and not feedparser.parse(atom).bozo
    assert build_feeds(Site(), []) == (rss, atom)


def _sizes(data: st.DataObject, high: int, spread: int) -> list[int]:
    """Sizes that grow with n: a base, then increments each 1..spread times the smallest
    (drawn from a seed: a list of 5,000 drawn integers makes hypothesis slow to shrink)."""
    base = data.draw(st.integers(min_value=0, max_value=5000))
    unit = data.draw(st.integers(min_value=1, max_value=500))
    rnd = random.Random(data.draw(st.integers(min_value=0, max_value=2**32)))
    steps = [rnd.randint(unit, unit * spread) for _ in range(high)]
    return list(itertools.accumulate(steps, initial=base))


@given(high=st.integers(min_value=0, max_value=5000), data=st.data())
def test_the_size_search_finds_the_largest_count_that_fits_with_small_probes(
        high: int, data: st.DataObject) -> None:
    """The email size search returns the exact answer for any sizes that grow with n, never
    renders far beyond it, and takes O(log n) renders even where sizes are far from a line."""
    sizes = _sizes(data, high, spread=data.draw(st.sampled_from([1, 2, 50, 10_000])))
    budget = data.draw(st.integers(min_value=sizes[0], max_value=sizes[-1] + 10))
    answer = max(n for n in range(high + 1) if sizes[n] <= budget)
    probes: list[int] = []

    def size(n: int) -> int:
        assert 0 < n <= high
        probes.append(n)
        return sizes[n]

    assert most_that_fit(high, size, budget) == answer
    assert max(probes, default=0) <= 8 * answer + 16
    assert len(probes) <= 3 * (high.bit_length() + 1)


@given(high=st.integers(min_value=1, max_value=5000), data=st.data())
def test_an_email_grows_about_linearly_so_the_search_takes_few_renders(
        high: int, data: st.DataObject) -> None:
    """Cards and titles vary in length within a factor of two or so: the line between the
    bracket's sizes lands next to the answer (the 18 renders of a 2,000-title day were
    most of its email time)."""
    sizes = _sizes(data, high, spread=2)
    budget = data.draw(st.integers(min_value=sizes[0], max_value=sizes[-1] + 10))
    probes: list[int] = []

    def size(n: int) -> int:
        probes.append(n)
        return sizes[n]

    most_that_fit(high, size, budget)
    assert len(probes) <= 8


@given(high=st.integers(min_value=0, max_value=5000), data=st.data())
def test_a_guess_changes_the_probes_of_the_size_search_not_its_answer(
        high: int, data: st.DataObject) -> None:
    """Started from any guess, the search returns what the full search does, and a guess
    close to the answer takes few probes (the subscribers' body starts from the archive's)."""
    sizes = _sizes(data, high, spread=data.draw(st.sampled_from([1, 3, 10_000])))
    budget = data.draw(st.integers(min_value=sizes[0], max_value=sizes[-1] + 10))
    answer = max(n for n in range(high + 1) if sizes[n] <= budget)
    near = data.draw(st.integers(min_value=-1, max_value=high + 1))
    probes: list[int] = []

    def size(n: int) -> int:
        assert 0 < n <= high
        probes.append(n)
        return sizes[n]

    assert most_that_fit(high, size, budget, near) == most_that_fit(
        high, sizes.__getitem__, budget) == answer
    if 0 < near <= high:
        assert len(probes) <= 3 * (abs(answer - near) + 1).bit_length() + 2
    if 0 < near == answer:
        assert len(probes) <= 2


@pytest.mark.parametrize("n", [121, 500, 3000])
def test_the_subscribers_body_is_the_same_after_the_archive_copy(n: int) -> None:
    """The subscribers' body (footer links) starts its size search where the archive copy's
    ended: the body is the one a search from scratch renders."""
    from digest.mail.message import PREFERENCES_MARKER, UNSUBSCRIBE_MARKER
    from digest.publish import render

    info = DigestInfo(name="2026-03-13", captured_at=datetime(2026, 3, 13, tzinfo=UTC),
                      paper_count=n)
    views = [paper_view(p) for p in _stored(n, 1500)]
    links = {"unsubscribe_url": UNSUBSCRIBE_MARKER, "preferences_url": PREFERENCES_MARKER}
    render._ANSWERS.clear()
    alone = render_email(Site(), info, views, **links)
    render._ANSWERS.clear()
    archive = render_email(Site(), info, views)
    assert render_email(Site(), info, views, **links) == alone != archive
    render._ANSWERS.clear()
    assert render_email(Site(), info, views) == archive
