"""The Daily Papers page parser: hand-written fixtures, error cases, real captures, fuzzing."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from conftest import FIXTURES, SHARED_SNAPSHOTS, entry, page
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.errors import DigestError, ParseError
from digest.sources.dailypage import parse_page
from digest.sources.files import read_snapshot
from digest.text import find_links

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PAGES = FIXTURES / "pages"


def test_every_variant_of_the_entry_format() -> None:
    snap = read_snapshot(PAGES / "variants.txt", datetime(2026, 7, 28, tzinfo=UTC), NOW)
    got = [(n.rank, p.title, p.published, p.org_handle, p.org_name, p.author_count, n.comments)
           for n in snap.listings for p in [n.paper]]
    assert got == [
        (1, "Orbital Tokenizers for Protein Language Models", date(2024, 10, 31), None, None, 3, 4),
        (2, "Plain Entry Without Any Metadata Block", None, None, None, None, None),
        (3, "A Paper From an Organisation", date(2020, 6, 15), "deep-example", "Deep Example Lab",
         None, 0),
        (4, "Year-less Date With Comments", date(2026, 7, 22), None, None, 1, 1),
        (5, "Year-less Date Without Comments", date(2026, 7, 27), None, None, 12, 0),
        (6, "MedS$^3$: Quotes \"like this\", 'and this' & <angle> brackets", date(2025, 1, 21),
         None, None, 6, 0),
    ]
    papers = [n.paper for n in snap.listings]
    assert papers[0].links == ("https://github.com/example/orbital-tok",
                               "https://huggingface.co/example/orbital")
    assert papers[0].abstract.startswith("We tokenize protein sequences")
    assert papers[5].links == ("https://example.org/a_(b)",)
    assert all(n.upvotes is None for n in snap.listings)
    assert snap.page_date == "Jul 28"


@pytest.mark.parametrize(
    ("text", "links"),
    [
        ("see https://github.com/a/b.", ("https://github.com/a/b",)),
        ("(https://x.org/p) and https://x.org/p again", ("https://x.org/p",)),
        ("https://en.wikipedia.org/wiki/Foo_(bar), done", ("https://en.wikipedia.org/wiki/Foo_(bar)",)),
        ("javascript:alert(1) ftp://x.org/f data:text/html,hi", ()),
        ("at http://www.cs.example.edu/cg/INSR-PDE/", ("http://www.cs.example.edu/cg/INSR-PDE/",)),
        ('"https://q.org/x"; https://', ("https://q.org/x",)),
    ],
)
def test_links_are_http_urls_without_sentence_punctuation(text: str, links: tuple[str, ...]) -> None:
    assert find_links(text) == links


def test_pages_without_any_metadata_block() -> None:
    parsed = parse_page(page(entry("A", meta=None), entry("B", meta=None)), "p")
    assert [(e.title, e.abstract, e.month) for e in parsed.entries] == [
        ("A", "Abstract of A.", None), ("B", "Abstract of B.", None)]
    assert (parsed.month, parsed.day) == (3, 13)


def test_chrome_without_daily_papers_line_and_with_it() -> None:
    with_line = "new\n\nSubscribe\n\nDaily Papers\n\nMar 2\n\nT\n\nA\n"
    assert parse_page(with_line, "p").entries[0].title == "T"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("truncated.txt",
         "truncated.txt:11: truncated entry: 'Second title with no abstract' has no abstract"),
        ("bad-date.txt", "bad-date.txt:15: bad paper date 'March 31, 2024'"),
        ("not-a-page.txt", "not-a-page.txt: not a Daily Papers page"),
    ],
)
def test_bad_pages_name_the_file_and_line(name: str, message: str) -> None:
    with pytest.raises(ParseError) as caught:
        read_snapshot(PAGES / name, datetime(2026, 3, 13, tzinfo=UTC), NOW)
    assert caught.value.message.startswith(str(PAGES / name)[: -len(name)] + message)
    assert " — " in caught.value.message  # every error carries a fix


def test_metadata_without_date_is_truncated(tmp_path: Path) -> None:
    text = page(entry("T", meta="  • 2 authors", date=None)).rstrip() + "\n"
    text = text.rsplit("\n\n", 1)[0] + "\n"  # drop the empty date line entirely
    path = tmp_path / "cut.txt"
    path.write_text(text)
    with pytest.raises(ParseError, match="no paper date"):
        read_snapshot(path, datetime(2026, 3, 13, tzinfo=UTC), NOW)


def test_impossible_paper_date(tmp_path: Path) -> None:
    path = tmp_path / "2026-03-13.txt"
    path.write_text(page(entry("T", date="Feb 30, 2024")))
    with pytest.raises(ParseError, match="impossible date 2/30"):
        read_snapshot(path, None, NOW)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "2026-03-13.txt"
    path.write_bytes(page(entry("Caf\u00e9", meta=None)).encode("latin-1"))
    with pytest.raises(ParseError, match="not UTF-8 text"):
        read_snapshot(path, None, NOW)


def test_control_characters_stay_inside_their_line() -> None:
    snap = read_snapshot(PAGES / "hostile.txt", datetime(2026, 3, 13, tzinfo=UTC), NOW)
    assert len(snap.listings) == 4
    third = snap.listings[2].paper
    assert "\x0b" in third.abstract and "\u2028" in third.abstract
    assert third.links == ("https://example.org/ok?a=1&b=2",)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([
    "Mar 13", "·", "  • 3 authors", "Oct 31, 2024 4", "Jul 22 1", "Title", "An abstract.",
    "org Org Name", "", "new", "Feb 30", "Mar 99",
]) | st.text(), max_size=30).map("\n\n".join))
def test_parser_raises_nothing_but_parse_error(text: str) -> None:
    try:
        parse_page(text, "fuzz")
    except ParseError:
        pass


@pytest.mark.skipif(not SHARED_SNAPSHOTS.is_dir(), reason="../shared/snapshots not present")
@pytest.mark.parametrize("path", sorted(SHARED_SNAPSHOTS.glob("*.txt")) if SHARED_SNAPSHOTS.is_dir()
                         else [], ids=lambda p: p.name)
def test_real_captures(path: Path) -> None:
    """Every real capture parses completely: one paper per long abstract line, sane fields."""
    snap = read_snapshot(path, None, NOW)
    lines = [line.strip() for line in path.read_text().split("\n") if line.strip()]
    abstracts = [line for line in lines if len(line) > 300]
    papers = [n.paper for n in snap.listings]
    assert len(papers) == len(abstracts) > 0
    assert [p.abstract for p in papers] == abstracts
    assert [n.rank for n in snap.listings] == list(range(1, len(papers) + 1))
    assert snap.captured_at.date().isoformat() == path.stem
    assert not snap.date_inferred
    for paper in papers:
        assert paper.title and not paper.title.startswith(("·", "•"))
        assert paper.published is None or paper.published <= snap.captured_at.date()
        assert all(link.startswith(("http://", "https://")) for link in paper.links)
    dated = [p for p in papers if p.published]
    blocks = sum(1 for line in lines if line == "·")
    assert len(dated) == blocks


@pytest.mark.skipif(not SHARED_SNAPSHOTS.is_dir(), reason="../shared/snapshots not present")
def test_real_captures_infer_their_dates_without_file_names(tmp_path: Path) -> None:
    for path in sorted(SHARED_SNAPSHOTS.glob("*.txt")):
        copy = tmp_path / "capture.txt"
        copy.write_bytes(path.read_bytes())
        snap = read_snapshot(copy, None, NOW)
        # Inferred: the latest year not in the future that fits the paper dates on the page.
        assert snap.date_inferred and snap.captured_at.date().isoformat() == path.stem
        assert "inferred" in snap.warnings[0] and "--captured-at" in snap.warnings[0]


def test_digest_error_message_shape() -> None:
    err = DigestError("a.txt", "broken", "fix it")
    assert err.message == "a.txt: broken — fix it"


@pytest.mark.parametrize(("ending", "cut"), [
    ("in the mid", True),
    ("see https://example.org/code", False),
    ("as shown (Table 2)", False),
    ('we call it "slow thinking"', False),
    ("Does it work?", False),
    ("in the mid\n", False),  # a final newline: the capture ended where the page did
])
def test_a_capture_cut_inside_its_last_abstract_is_refused(tmp_path: Path, ending: str,
                                                             cut: bool) -> None:
    path = tmp_path / "2026-03-13.txt"
    path.write_text(page(entry("First"), "Cut Title\n\nAn abstract that stops " + ending).rstrip("\n")
                    + ("\n" if ending.endswith("\n") else ""))
    if not cut:
        assert read_snapshot(path, None, NOW).listings[-1].paper.title == "Cut Title"
        return
    with pytest.raises(ParseError) as caught:
        read_snapshot(path, None, NOW)
    assert caught.value.message == (
        f"{path}:23: truncated entry: 'Cut Title' ends mid-abstract (no final newline, and the "
        "abstract does not end like a sentence or a URL) — re-capture the page or remove the "
        "incomplete entry")


def test_the_shared_captures_are_not_cut() -> None:
    for capture in sorted(SHARED_SNAPSHOTS.glob("*.txt")):  # read in place
        assert read_snapshot(capture, None, NOW).listings
