"""RSS 2.0 and Atom feeds: arXiv listings (API and RSS), journal tables of contents, bioRxiv,
blogs. Identity: an arXiv id or a DOI found in the entry's id or link, else its guid/id, else its
link. arXiv `replace` announcements are updates, not news.

Well-formed feeds go through feedparser-rs (Rust: a tenth of feedparser's time on a 2,000-item
feed, and no XML entity expansion at all); anything it flags (malformed XML, DTD entities, a
size limit, a body that is not RSS/Atom) or that is not valid UTF-8 where it reads UTF-8 goes to
feedparser, the tolerant reader these listings were written against, so both give the same
listings (bench/feed_parsers.py compares them feed by feed)."""

from __future__ import annotations

import html.entities
import re
from datetime import date
from html.parser import HTMLParser
from typing import Any

from digest.errors import ParseError
from digest.models import Listing, Paper, normalize_arxiv_id
from digest.text import find_links, one_line

_DOI = re.compile(r"\b(10\.\d{4,9}/[^\s\"<>?#]+)", re.IGNORECASE)
_ARXIV_PREFIX = re.compile(r"^arXiv:\S+\s+Announce Type:\s*\S+\s*(Abstract:\s*)?", re.IGNORECASE)
_ANNOUNCE = re.compile(r"Announce Type:\s*(\S+)")
UPDATE_TYPES = ("replace", "replace-cross")
# feedparser-rs caps what one entry may hold (20 authors, 50 links...) and cuts the rest without
# a word: an arXiv collaboration paper would lose its author list. The document is already held
# to `fetch.max_bytes`, which bounds everything in it, so those caps are its size. Its entry cap
# stays (it reserves room for that many up front): a feed over it is flagged, so feedparser reads
# it. Its size cap (100 MB) is above `fetch.max_bytes`'s.
FAST_MAX_ENTRIES = 10_000


def parse_feed(data: bytes | str, where: str, warnings: list[str] | None = None
               ) -> list[Listing]:
    """Parse an RSS or Atom document into listings, in feed order (both parsers normalise every
    field's type, so `warnings` gets nothing from here)."""
    parsed, fast = read_feed(data)
    if parsed.bozo and not parsed.entries and not parsed.get("feed"):
        raise ParseError(where, f"not an RSS or Atom feed ({parsed.get('bozo_exception')})",
                         "check the URL or the capture")
    atom = str(parsed.get("version") or "").startswith("atom")
    papers = []
    for rank, entry in enumerate(parsed.entries, 1):
        title = one_line(_plain(entry, "title", guess=fast))
        if not title:
            continue
        papers.append(Listing(_paper(entry, title, guess=fast and atom), rank))
    return papers


def read_feed(data: bytes | str) -> tuple[Any, bool]:
    """A parsed feed (feedparser's shape) and whether feedparser-rs read it: True, a
    well-formed RSS/Atom document; False, feedparser's reading of anything else."""
    parsed = _fast(data) if isinstance(data, bytes) else None
    if parsed is not None:
        return parsed, True
    import feedparser  # here, not at the top: only a feed feedparser-rs refused needs it

    # Only the text of HTML fields is kept (see _plain), so the links inside them need not be
    # made absolute: that pass is an eighth of parsing a 2,000-item feed.
    return feedparser.parse(data, resolve_relative_uris=False), False


def _fast(data: bytes) -> Any:
    """feedparser-rs's reading of a well-formed RSS/Atom document, else None (feedparser's
    turn). Only bytes come here: given a str that starts with http://, feedparser-rs fetches it."""
    if _MIXED.search(data):
        return None  # feedparser-rs keeps a field's text only up to its first child element
    import feedparser_rs

    size = len(data)
    limits = feedparser_rs.ParserLimits(
        max_entries=FAST_MAX_ENTRIES, max_authors=size, max_contributors=size, max_tags=size,
        max_links_per_entry=size, max_links_per_feed=size, max_content_blocks=size,
        max_enclosures=size)
    # No sanitising: it drops a plain-text title's "<Estuaries>"; _text keeps text only anyway.
    parsed = feedparser_rs.parse_with_limits(data, limits=limits, sanitize_html=False,
                                             resolve_relative_uris=False)
    if parsed.bozo or not str(parsed.version).startswith(("rss", "atom")):
        return None  # malformed (feedparser recovers what it can), DTD entities, JSON Feed
    if parsed.get("encoding") == "utf-8" and not _is_utf8(data):
        return None  # feedparser-rs puts U+FFFD where feedparser tries windows-1252
    return parsed


# A title, description, summary or content holding a child element, not escaped markup:
# "T <i>x</i> tail" raw in the XML. feedparser-rs reads it as "T x" (the text after the
# child is lost); feedparser keeps it whole. Possessive, so a long field is scanned once.
_MIXED = re.compile(rb"<(?:[\w.-]+:)?(?:title|description|summary|content|subtitle)\b[^>]*+(?<!/)>"
                    rb"(?:[^<]++|<!\[CDATA\[.*?\]\]>)*+<[A-Za-z_]", re.DOTALL)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _paper(entry: Any, title: str, *, guess: bool = False) -> Paper:
    # Each field read once: a feedparser-rs entry builds a new Python object on every get.
    entry_id, entry_link = entry.get("id"), entry.get("link")
    candidates = [str(entry_id or ""), str(entry_link or "")]
    arxiv_id = next((a for a in map(_arxiv_in, candidates) if a), None)
    ident = None
    if not arxiv_id:
        doi = next((m.group(1).rstrip(".") for c in candidates if (m := _DOI.search(c))), None)
        if doi:
            ident = f"doi:{doi.lower()}"
        elif entry_id:
            ident = f"guid:{entry_id}"
        elif entry_link:
            ident = f"link:{entry_link}"
    summary = " ".join(_plain(entry, "summary", guess=guess).split())
    announce = str(entry.get("arxiv_announce_type") or "").strip().lower()
    if not announce and "Announce Type:" in summary:
        match = _ANNOUNCE.search(summary)
        announce = match.group(1).lower() if match else ""
    if summary[:6].lower() == "arxiv:":
        summary = _ARXIV_PREFIX.sub("", summary)
    names = [one_line(name) for a in entry.get("authors") or () if (name := a.get("name"))]
    if not names and (author := entry.get("author")):  # feedparser-rs: "ada@x.org (Ada L)" unsplit
        names = [one_line(_author_name(str(author)))]
    if len(names) == 1 and "," in names[0]:  # dc:creator "Ada Fold, Ben Crease"
        names = [n.strip() for n in names[0].split(",")]
    authors = tuple(n for n in names if n)
    when = entry.get("published_parsed") or entry.get("updated_parsed")
    link = f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else str(entry_link or "")
    return Paper(
        title=title, abstract=summary,
        published=date(when.tm_year, when.tm_mon, when.tm_mday) if when else None,
        author_count=len(authors) or None, authors=authors, links=find_links(summary),
        arxiv_id=arxiv_id, ident=ident,
        page_url=link if link.startswith(("http://", "https://")) else None,
        update=announce in UPDATE_TYPES,
    )


def _arxiv_in(text: str) -> str | None:
    if "arxiv" not in text.lower():
        return None
    match = re.search(r"(?:abs|pdf)/([\w.\-/]+?)(?:\.pdf)?$|oai:arXiv\.org:(\S+)$|arXiv:(\S+)$", text)
    if not match:
        return None
    return normalize_arxiv_id(next(g for g in match.groups() if g))


class _Text(HTMLParser):
    """The text of an HTML fragment, without what script/style/applet elements hold (feedparser's
    sanitiser drops them whole; feedparser-rs runs unsanitised, see _fast)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hidden += tag in _HIDDEN

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN and self.hidden:
            self.hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


_HIDDEN = frozenset(("script", "style", "applet"))
# feedparser's list of the HTML elements a guessed-HTML text may hold (sanitizer.py).
_HTML_ELEMENTS = frozenset("""a abbr acronym address area article aside audio b big blockquote br
    button canvas caption center cite code col colgroup command datagrid datalist dd del details
    dfn dialog dir div dl dt em event-source fieldset figcaption figure font footer form h1 h2 h3
    h4 h5 h6 header hr i img input ins kbd keygen label legend li m map menu meter multicol nav
    nextid noscript ol optgroup option output p pre progress q s samp section select small sound
    source spacer span strike strong sub sup table tbody td textarea tfoot th thead time tr tt u ul
    var video""".split())


def _plain(entry: Any, field: str, *, guess: bool = False) -> str:
    """A field's text: HTML content (most RSS descriptions) loses its tags, plain text
    (a title like "Tidal Patterns in <Estuaries>") is kept as it is.

    With `guess` (feedparser-rs's entries), a field typed HTML is HTML only if it looks like it:
    feedparser-rs types every RSS title and every untyped Atom text as HTML, where RSS says
    nothing and Atom says plain text; feedparser guesses RSS titles this way."""
    value = str(entry.get(field, "") or "")
    detail = entry.get(f"{field}_detail") or {}
    is_html = "html" in str(detail.get("type", ""))
    if is_html and guess and detail.get("type") == "text/html":
        is_html = _looks_like_html(value)
    return _text(value) if is_html else value


def _looks_like_html(text: str) -> bool:
    """feedparser's guess (mixin.looks_like_html): a close tag or an entity, every tag an HTML
    element, every named entity an HTML one."""
    if not (re.search(r"</(\w+)>", text) or re.search(r"&#?\w+;", text)):
        return False
    if any(t.lower() not in _HTML_ELEMENTS for t in re.findall(r"</?(\w+)", text)):
        return False
    return all(e in html.entities.entitydefs for e in re.findall(r"&(\w+);", text))


def _author_name(author: str) -> str:
    """feedparser's split of an RSS <author>: "ada@x.org (Ada L)" is Ada L; a bare address stays."""
    email = re.search(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", author)
    if not email:
        return author
    rest = author.replace(email.group(0), "").replace("()", "").replace("<>", "").replace("&lt;&gt;", "")
    return rest.strip().strip("()").strip()  # a bare address is no name (feedparser: email only)


def _text(html: str) -> str:
    """Feed summaries may be HTML: keep the text only (our outputs escape it again)."""
    if "<" not in html and "&" not in html:
        return html
    parser = _Text()
    parser.feed(html)
    parser.close()
    return " ".join("".join(parser.parts).split())
