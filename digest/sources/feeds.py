"""RSS 2.0 and Atom feeds through feedparser: arXiv listings (API and RSS), journal tables
of contents, bioRxiv, blogs. Identity: an arXiv id or a DOI found in the entry's id or link,
else its guid/id, else its link. arXiv `replace` announcements are updates, not news."""

from __future__ import annotations

import re
from datetime import date
from html.parser import HTMLParser
from typing import Any

from digest.errors import ParseError
from digest.models import Listing, Paper, normalize_arxiv_id
from digest.text import find_links, one_line

_DOI = re.compile(r"\b(10\.\d{4,9}/[^\s\"<>?#]+)", re.IGNORECASE)
_ARXIV_PREFIX = re.compile(r"^arXiv:\S+\s+Announce Type:\s*\S+\s*(Abstract:\s*)?", re.IGNORECASE)
UPDATE_TYPES = ("replace", "replace-cross")


def parse_feed(data: bytes | str, where: str, warnings: list[str] | None = None
               ) -> list[Listing]:
    """Parse an RSS or Atom document into listings, in feed order (feedparser normalises
    every field's type, so `warnings` gets nothing from here)."""
    import feedparser  # here, not at the top: a cycle with nothing new never parses a feed

    # Only the text of HTML fields is kept (see _plain), so the links inside them need not be
    # made absolute: that pass is an eighth of parsing a 2,000-item feed.
    parsed = feedparser.parse(data, resolve_relative_uris=False)
    if parsed.bozo and not parsed.entries and not parsed.get("feed"):
        raise ParseError(where, f"not an RSS or Atom feed ({parsed.get('bozo_exception')})",
                         "check the URL or the capture")
    papers = []
    for rank, entry in enumerate(parsed.entries, 1):
        title = one_line(_plain(entry, "title"))
        if not title:
            continue
        papers.append(Listing(_paper(entry, title), rank))
    return papers


def _paper(entry: Any, title: str) -> Paper:
    candidates = [str(entry.get("id") or ""), str(entry.get("link") or "")]
    arxiv_id = next((a for a in map(_arxiv_in, candidates) if a), None)
    ident = None
    if not arxiv_id:
        doi = next((m.group(1).rstrip(".") for c in candidates if (m := _DOI.search(c))), None)
        if doi:
            ident = f"doi:{doi.lower()}"
        elif entry.get("id"):
            ident = f"guid:{entry['id']}"
        elif entry.get("link"):
            ident = f"link:{entry['link']}"
    summary = " ".join(_plain(entry, "summary").split())
    announce = str(entry.get("arxiv_announce_type") or "").strip().lower()
    if not announce:
        match = re.search(r"Announce Type:\s*(\S+)", summary)
        announce = match.group(1).lower() if match else ""
    summary = _ARXIV_PREFIX.sub("", summary)
    names = [one_line(a.get("name", "")) for a in entry.get("authors", []) if a.get("name")]
    if len(names) == 1 and "," in names[0]:  # dc:creator "Ada Fold, Ben Crease"
        names = [n.strip() for n in names[0].split(",")]
    authors = tuple(n for n in names if n)
    when = entry.get("published_parsed") or entry.get("updated_parsed")
    link = f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else str(entry.get("link") or "")
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
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _plain(entry: Any, field: str) -> str:
    """A field's text: HTML content (most RSS descriptions) loses its tags, plain text
    (a title like "Tidal Patterns in <Estuaries>") is kept as it is."""
    value = str(entry.get(field, "") or "")
    detail = entry.get(f"{field}_detail") or {}
    return _text(value) if "html" in str(detail.get("type", "")) else value


def _text(html: str) -> str:
    """Feed summaries may be HTML: keep the text only (our outputs escape it again)."""
    if "<" not in html and "&" not in html:
        return html
    parser = _Text()
    parser.feed(html)
    parser.close()
    return " ".join("".join(parser.parts).split())
