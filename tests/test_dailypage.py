"""The Daily Papers page parser: hand-written fixtures, error cases, real captures, fuzzing."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from conftest import FIXTURES, SHARED_SNAPSHOTS, entry, page
from hypothesis import example, given, settings
from hypothesis import strategies as st

from digest.errors import DigestError, ParseError
from digest.models import _NON_WORD, Listing, Paper, normalize_title, page_listing, page_paper
from digest.sources.dailypage import parse_page, parse_rows
from digest.sources.files import _decoded_lines, _links, read_snapshot
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


# The fast reading (common metadata blocks inline, papers and listings built through their
# slots, lines decoded one by one) against the general one, over pages of every shape.
# Mostly well-formed entries (most pages parse), with near misses and noise among them.
_TITLES = st.sampled_from(["Title", "T: A-B", "Café — naïve", "ＦＵＬＬ ｗｉｄｔｈ"] * 3 + [
    "• 3 authors", "·", "org Org", "Mar 12"]) | st.text(max_size=12)
_ABSTRACTS = st.sampled_from(["An abstract.", "See https://x.org/a_(b).", "ends mid", "x\u2028y",
                              "(https://q.org/p)"] * 2 + ["· x", "• 2 authors"])
_DATES = st.sampled_from(["Oct 31, 2024 4", "Jul 22 1", "Jul 22", "Mar 12"] * 6 + [
    "Feb 30", "Feb 29, 2024", "Mar 0", "Mar 32", "Jan 1 0", "March 3", "Mar ١٢", "", "bad"])
_META = st.sampled_from(["  • 3 authors", "• 1 author", "org Org Name", "org"] * 3 + [
    "•3 authors", "• 99999999999 authors", "• ٣ authors", "a  b ", "•x", "·", "x ·"])
_BLOCKS = st.one_of(
    st.just([]),
    st.tuples(_META, st.just("·"), _DATES).map(list),  # the common shape, and near misses
    st.tuples(_META, st.just("·"), _DATES).map(list),
    st.tuples(_META, _META, st.just("·"), _DATES).map(list),
    st.lists(_META | _DATES | st.just("·") | _TITLES, max_size=4),
)
_PAGES = st.builds(
    lambda head, entries, blank, final: blank.join([*head, *(line for e in entries for line in e)])
    + final,
    st.sampled_from([["new", "Subscribe", "Mar 13"]] * 4 + [["Jul 28"], ["Mar 32"], ["new"]]),
    st.lists(st.builds(lambda t, a, b: [t, a, *b], _TITLES, _ABSTRACTS, _BLOCKS), max_size=8),
    st.sampled_from(["\n\n", "\n", "\n \n", "\r\n\r\n", "\n\x0b\n", "\n\n\n"]),
    st.sampled_from(["\n", ""]),
)


def _read(lines: list[str], fast: bool) -> object:
    try:
        return parse_rows(lines, "p", fast=fast)
    except ParseError as exc:
        return exc.message


@settings(max_examples=1500, deadline=None)
@given(_PAGES)
@example(page(entry("A"), entry("B", meta="org Org Name", date="Oct 31, 2024 4"),
              entry("C", meta=None), entry("D", meta="• 1 author", date="Jul 22 1")))
@example(page(entry("A", meta="  • 2 authors", date="Feb 30")))
@example(page(entry("A", meta="•x")))
def test_the_fast_reading_is_the_general_one(text: str) -> None:
    lines = text.split("\n")
    assert _read(lines, fast=True) == _read(lines, fast=False)


_RAW = st.one_of(
    st.binary(max_size=40),
    st.builds(lambda bom, text, bad: bom + text.encode() + bad, st.sampled_from([b"", b"\xef\xbb\xbf"]),
              st.text(alphabet=st.sampled_from("a\n\r \u00b7\u2022\u2028\ufeff"), max_size=20),
              st.sampled_from([b"", b"\xff", b"\xe2\x80", b"\n\xe2\x80\n", b"\xef\xbb\xbf"])),
)


@settings(max_examples=800, deadline=None)
@given(_RAW, st.sampled_from([1, 2, 3, 5, 8, 1 << 22]))
def test_lines_decode_one_by_one_as_the_whole_text_does(raw: bytes, chunk: int) -> None:
    try:
        expected: object = raw.decode("utf-8-sig").split("\n")
    except UnicodeDecodeError as exc:
        expected = f"w: not UTF-8 text (byte {exc.start}) — save the capture as UTF-8 text"
    try:
        got: object = list(_decoded_lines(raw, "w", chunk))
    except ParseError as exc:
        got = exc.message
    assert got == expected


_COUNTS = st.none() | st.integers(min_value=-5, max_value=2**31 + 5) | st.sampled_from([2**31 - 1, 2**31])


@settings(max_examples=300, deadline=None)
@given(title=st.text(), abstract=st.text(max_size=5), published=st.none() | st.dates(),
       org_handle=st.none() | st.text(max_size=5), org_name=st.none() | st.text(max_size=5),
       author_count=_COUNTS, links=st.lists(st.text(max_size=5), max_size=2).map(tuple),
       rank=st.integers(min_value=1), comments=_COUNTS)
def test_page_papers_and_listings_are_the_dataclasses_own(
        title: str, abstract: str, published: date | None, org_handle: str | None,
        org_name: str | None, author_count: int | None, links: tuple[str, ...], rank: int,
        comments: int | None) -> None:
    fast = page_listing(page_paper(title, abstract, published, org_handle, org_name, author_count,
                                   links), rank, comments)
    slow = Listing(Paper(title=title, abstract=abstract, published=published, org_handle=org_handle,
                         org_name=org_name, author_count=author_count, links=links), rank,
                   comments=comments)
    # Every field, also those that equality leaves out (title_key, key): a field added to
    # Paper and not to page_paper fails here (the slot is unset).
    assert [getattr(fast.paper, f.name) for f in fields(Paper)] == [
        getattr(slow.paper, f.name) for f in fields(Paper)]
    assert [getattr(fast, f.name) for f in fields(Listing)] == [
        getattr(slow, f.name) for f in fields(Listing)]
    assert type(fast) is Listing and type(fast.paper) is Paper
    assert fast == slow and hash(fast) == hash(slow)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127)))
@example("  MedS$^3$:  Towards   Medical_Models! ")
def test_ascii_titles_fold_as_every_title_does(title: str) -> None:
    assert normalize_title(title) == _NON_WORD.sub(" ", title.lower()).strip()


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["http", "https://", "://x.org/a", "(b)", ".", " ", "h", "ttp", "s",
                                 "http://", "é"]), max_size=12).map("".join))
@example("see http and then https://x.org/p.")
def test_links_from_the_first_http_on_are_all_the_links(abstract: str) -> None:
    assert _links(abstract) == find_links(abstract)
