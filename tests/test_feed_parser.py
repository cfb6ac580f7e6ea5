"""The feed parser: feedparser-rs reads well-formed feeds, feedparser the rest, and every feed
gives the listings feedparser alone gave (bench/feed_parsers.py runs the same comparison on
every feed we have). Each case below is one place where feedparser-rs, left to itself, differs."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES

from digest.errors import ParseError
from digest.sources import feeds

sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
from feed_parsers import atom, rss  # noqa: E402  (the comparison's feed builders)

AUTHORS = "".join(f"<author><name>Author {i}</name></author>" for i in range(40))
CASES = {
    # feedparser-rs types every RSS title HTML and sanitises it: "<Estuaries>" was lost.
    "rss title is text": (rss("<item><title>Tidal &lt;Estuaries&gt; &amp; Deltas</title></item>"),
                          {"title": "Tidal <Estuaries> & Deltas"}),
    "rss title that looks like html": (rss("<item><title>A &lt;b&gt;bold&lt;/b&gt; claim</title></item>"),
                                       {"title": "A bold claim"}),
    # An untyped Atom summary is text: "x<y and y>z" in an arXiv abstract is not a tag.
    "atom untyped summary is text": (atom("<entry><id>e1</id><title>S</title><summary>for x&lt;y and "
                                          "y&gt;z</summary></entry>"), {"abstract": "for x<y and y>z"}),
    # Unsanitised, a description's script would be text; feedparser's sanitiser drops it whole.
    "script in a description": (rss("<item><title>S</title><description>&lt;p&gt;Text&lt;/p&gt;"
                                    "&lt;script&gt;alert(1)&lt;/script&gt;</description></item>"),
                                {"abstract": "Text"}),
    # feedparser-rs keeps 20 authors an entry unless told otherwise.
    "40 authors": (atom(f"<entry><id>e1</id><title>Big</title>{AUTHORS}</entry>"), {"author_count": 40}),
    "rss author with an address": (rss("<item><title>A</title><author>ada@example.org (Ada L)</author>"
                                       "</item>"), {"authors": ("Ada L",)}),
    # Malformed XML: feedparser-rs gives no entries, feedparser recovers the item.
    "bare ampersand": (rss("<item><title>Salt & pepper</title></item>"), {"title": "Salt & pepper"}),
    # Not UTF-8 where UTF-8 is declared: feedparser-rs puts U+FFFD, feedparser tries windows-1252.
    "latin-1 declared utf-8": (rss("<item><title>Caf\u00e9</title></item>").decode().encode("latin-1"),
                               {"title": "Caf\u00e9"}),
    # An entity the document declares: feedparser expands it, feedparser-rs keeps "&t;".
    "dtd entity": (rss("<item><title>&t; title</title></item>",
                       head='<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY t "Defined">]>'),
                   {"title": "Defined title"}),
    # A child element inside a field (not escaped markup): feedparser-rs kept the text up to it.
    "rss title with a child element": (rss("<item><title>T <i>x</i> tail</title></item>"),
                                       {"title": "T x tail"}),
    "rss description with a child element": (
        rss("<item><title>S</title><description>S <b>y</b> tail.</description></item>"),
        {"abstract": "S y tail."}),
    "atom summary with a child element": (
        atom("<entry><id>e1</id><title>S</title><summary>We study scaling in <i>tiny</i> "
             "models.</summary></entry>"), {"abstract": "We study scaling in tiny models."}),
    "mathml in a title": (
        rss('<item><title>Bounds for <mml:math xmlns:mml="http://www.w3.org/1998/Math/MathML">'
            "<mml:mi>n</mml:mi></mml:math>-body problems</title></item>"),
        {"title": "Bounds for n-body problems"}),
    "relative link": (rss("<item><title>R</title><link>/articles/1</link></item>"), {"page_url": None}),
}


def listings(data: bytes | str) -> Any:
    try:
        return [asdict(listing) for listing in feeds.parse_feed(data, "test", [])]
    except ParseError as error:
        return f"ParseError {error}"


@pytest.mark.parametrize("case", CASES)
def test_feedparser_rs_gives_feedparsers_listings(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data, expected = CASES[case]
    ours = listings(data)
    paper = ours[0]["paper"]
    assert {key: paper[key] for key in expected} == expected
    monkeypatch.setattr(feeds, "_fast", lambda data: None)  # feedparser alone, as before
    assert listings(data) == ours


def test_a_feed_over_feedparser_rs_entry_cap_is_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """feedparser-rs stops at its entry cap (flagging it): such a feed goes to feedparser."""
    monkeypatch.setattr(feeds, "FAST_MAX_ENTRIES", 3)
    data = rss("".join(f"<item><title>Item {i}</title><guid>g{i}</guid></item>" for i in range(5)))
    assert [listing.paper.title for listing in feeds.parse_feed(data, "test", [])] == [
        f"Item {i}" for i in range(5)]


def test_a_json_feed_is_still_not_a_feed() -> None:
    """feedparser-rs reads JSON Feed; feedparser does not, and a source never had it."""
    body = b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "1", "title": "J"}]}'
    with pytest.raises(ParseError, match="not an RSS or Atom feed"):
        feeds.parse_feed(body, "test", [])


def test_a_well_formed_feed_does_not_import_feedparser() -> None:
    """Issue 12: feedparser's import alone is a tenth of a second of a first run."""
    probe = ("import sys\nfrom pathlib import Path\nfrom digest.sources.feeds import parse_feed\n"
             f"assert parse_feed(Path({str(FIXTURES / 'sources' / 'journal.rss')!r}).read_bytes(), 'x', [])\n"
             "print('feedparser' in sys.modules, 'feedparser_rs' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
