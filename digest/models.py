"""The values that flow through the pipeline, and the rule that gives a paper its identity."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime

_NON_WORD = re.compile(r"[\W_]+")
# New-style ids (2410.12345, 0704.0001) and old-style ids (hep-th/9901001, math.CA/0611800).
_ARXIV_ID = re.compile(
    r"(?P<new>\d{4}\.\d{4,5})(?:v\d+)?$|(?P<arch>[a-z-]+)(?:\.[A-Za-z-]+)?/(?P<num>\d{7})(?:v\d+)?$",
    re.IGNORECASE,
)


def ident_of(key: str) -> str | None:
    """The stable id a stored key was made from (`doi:…`, `guid:…`), or None for an arXiv id or
    a title: what a paper read back from the store needs to behave as when it was seen."""
    return None if key.startswith((ARXIV_PREFIX, TITLE_PREFIX)) else key


# For an ASCII title (the common case), what the fold below does in one table lookup a byte:
# letters to lower case (ASCII is already in NFKC form, and its case-folding is lower()),
# digits kept, everything else (all of it \W or _) to a space, the spaces then collapsed.
_ASCII_FOLD = bytes(ord(chr(c).lower()) if chr(c).isalnum() else 0x20 for c in range(128)) + (
    b" " * 128)


def normalize_title(title: str) -> str:
    """Fold a title so that case, Unicode forms, punctuation and spacing never tell papers apart."""
    if title.isascii():
        return b" ".join(title.encode("ascii").translate(_ASCII_FOLD).split()).decode("ascii")
    folded = unicodedata.normalize("NFKC", title).casefold()
    return _NON_WORD.sub(" ", folded).strip()


def normalize_arxiv_id(raw: str) -> str | None:
    """Return the bare arXiv id (no `arXiv:` prefix, URL or version), or None if it is not one."""
    text = raw.strip()
    for prefix in ("oai:arXiv.org:", "arXiv:", "arxiv:"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    text = re.sub(r"^https?://(www\.)?(export\.)?arxiv\.org/(abs|pdf)/", "", text)
    text = re.sub(r"\.pdf$", "", text)
    match = _ARXIV_ID.fullmatch(text)
    if not match:
        return None
    if match["new"]:
        return match["new"]
    return f"{match['arch'].lower()}/{match['num']}"


# The store's integer columns hold 32 bits: a count beyond that (or below zero) is not a
# real count but a corrupt or hostile page, kept as unknown on both backends alike.
MAX_COUNT = 2**31 - 1


def count_or_none(value: int | None) -> int | None:
    """A count as the store can hold it, or None when it cannot be a real one."""
    return value if value is None or 0 <= value <= MAX_COUNT else None


ARXIV_PREFIX = "arxiv:"
TITLE_PREFIX = "title:"


@dataclass(frozen=True, slots=True)
class Paper:
    """What a paper is, whichever listing shows it: its rank and counts are the listing's."""

    title: str
    abstract: str
    published: date | None = None
    org_handle: str | None = None
    org_name: str | None = None
    author_count: int | None = None
    links: tuple[str, ...] = ()
    arxiv_id: str | None = None
    ident: str | None = None  # another stable id when there is no arXiv id: "doi:…", "guid:…"
    page_url: str | None = None  # the entry's own page, when the source names one
    authors: tuple[str, ...] = ()
    update: bool = False  # an announcement that a known paper changed (arXiv "replace")
    # Derived once: the diff and the store consult them several times per paper.
    title_key: str = field(init=False, repr=False, compare=False)
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.ident and "\x00" in self.ident:  # PostgreSQL text cannot hold NUL; SQLite
            object.__setattr__(self, "ident", self.ident.replace("\x00", ""))  # json cuts at it
        if self.author_count != count_or_none(self.author_count):
            object.__setattr__(self, "author_count", None)
        title_key = normalize_title(self.title)
        object.__setattr__(self, "title_key", title_key)
        if self.arxiv_id:
            key = ARXIV_PREFIX + self.arxiv_id
        else:
            key = self.ident or TITLE_PREFIX + title_key
        object.__setattr__(self, "key", key)

    @property
    def matches_by_title(self) -> bool:
        """Research papers (arXiv id or title identity) are also recognised by their title;
        generic feed entries ("Weekly update") are not."""
        return self.ident is None or self.arxiv_id is not None

    @property
    def url(self) -> str | None:
        """The paper's own page when known, else the first link of its abstract."""
        if self.page_url:
            return self.page_url
        if self.arxiv_id:
            return f"https://huggingface.co/papers/{self.arxiv_id}"
        return self.links[0] if self.links else None


# The slots' own setters (each slot is a descriptor): the frozen dataclass's __init__ sets
# each field through object.__setattr__, a slower way to the same setter.
_PAPER_SETTERS = tuple(getattr(Paper, name).__set__ for name in (
    "title", "abstract", "published", "org_handle", "org_name", "author_count", "links",
    "arxiv_id", "ident", "page_url", "authors", "update", "title_key", "key"))


def page_paper(title: str, abstract: str, published: date | None, org_handle: str | None,
               org_name: str | None, author_count: int | None, links: tuple[str, ...]) -> Paper:
    """`Paper(title, abstract, published, org_handle, org_name, author_count, links)`: the same
    value (every field, the derived ones too) for two thirds of the cost, for a page parser
    that makes 50,000 at once."""
    (set_title, set_abstract, set_published, set_org_handle, set_org_name, set_author_count,
     set_links, set_arxiv_id, set_ident, set_page_url, set_authors, set_update, set_title_key,
     set_key) = _PAPER_SETTERS
    paper = object.__new__(Paper)
    set_title(paper, title)
    set_abstract(paper, abstract)
    set_published(paper, published)
    set_org_handle(paper, org_handle)
    set_org_name(paper, org_name)
    set_author_count(paper, count_or_none(author_count))  # as __post_init__
    set_links(paper, links)
    set_arxiv_id(paper, None)
    set_ident(paper, None)
    set_page_url(paper, None)
    set_authors(paper, ())
    set_update(paper, False)
    title_key = normalize_title(title)
    set_title_key(paper, title_key)
    set_key(paper, TITLE_PREFIX + title_key)  # no arXiv id, no other id: the title's
    return paper


@dataclass(frozen=True, slots=True)
class Listing:
    """One paper as one snapshot lists it: `rank` is its 1-based position on the page, the
    counts are the page's at that moment. Parsers make these; a `Sighting` is the store's
    record of one read back (with its time and source, without the paper)."""

    paper: Paper
    rank: int
    comments: int | None = None
    upvotes: int | None = None

    def __post_init__(self) -> None:
        for name in ("comments", "upvotes"):
            value = getattr(self, name)
            if value != count_or_none(value):
                object.__setattr__(self, name, None)


_LISTING_SETTERS = tuple(getattr(Listing, name).__set__
                         for name in ("paper", "rank", "comments", "upvotes"))


def page_listing(paper: Paper, rank: int, comments: int | None) -> Listing:
    """`Listing(paper, rank, comments=comments)`: the same value for under half the cost (as
    `page_paper`)."""
    set_paper, set_rank, set_comments, set_upvotes = _LISTING_SETTERS
    listing = object.__new__(Listing)
    set_paper(listing, paper)
    set_rank(listing, rank)
    set_comments(listing, count_or_none(comments))  # as __post_init__
    set_upvotes(listing, None)
    return listing


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A parsed capture of a listing: where it came from, when it was taken, what it showed."""

    path: str
    source: str
    captured_at: datetime
    sha256: str
    listings: tuple[Listing, ...]
    page_date: str = ""
    date_inferred: bool = False
    warnings: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class StoredPaper:
    """A paper as the store knows it: its fixed key, first sighting (time, source, rank and
    counts) and the digest it went out in."""

    key: str
    paper: Paper
    first_seen: datetime
    digest: str | None
    position: int = 0  # 1-based place in its digest (page order of the new papers)
    source: str = ""  # the source that first listed it (digests group papers by source)
    rank: int = 0  # the first sighting's rank and counts (a paper's page: the latest's)
    comments: int | None = None
    upvotes: int | None = None


@dataclass(frozen=True, slots=True)
class DigestInfo:
    """One digest: named by its capture date (`2026-03-13`, `2026-03-13-2` for a second one)."""

    name: str
    captured_at: datetime
    paper_count: int
    held_reason: str | None = None  # set when the flood guard holds it back from email


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What ingesting one snapshot did."""

    path: str
    captured_at: datetime
    papers: int
    new: int
    digest: DigestInfo | None
    status: str  # "ingested" or "already ingested"


@dataclass(frozen=True, slots=True)
class Sighting:
    """One time a paper was listed, as the store reads it back: when, by which source, at
    what rank and with what counts (a `Listing` is the parser's, before it is stored)."""

    captured_at: datetime
    source: str
    rank: int
    comments: int | None
    upvotes: int | None


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """A stored snapshot as `digest history` lists it, with the digest it made (if any)."""

    id: int
    path: str
    source: str
    sha256: str
    captured_at: datetime
    ingested_at: datetime
    paper_count: int
    new_count: int
    baseline: bool
    digest: str | None
