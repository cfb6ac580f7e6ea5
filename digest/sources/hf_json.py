"""The Hugging Face papers JSON APIs: daily papers (`/api/daily_papers`) and search
(`/api/papers/search?q=…`), each a list of items with the same `paper` objects."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from digest.errors import ParseError
from digest.models import Listing, Paper, normalize_arxiv_id
from digest.text import find_links, one_line


class _Skipped(Exception):
    """One entry cannot be read: it is skipped, the rest of the listing is read."""


class _WrongType(_Skipped):
    """A field of one entry has the wrong type."""

    def __init__(self, name: str, value: Any) -> None:
        super().__init__(f"field {name} is {type(value).__name__}, not {_EXPECTED[name]}")


_EXPECTED = {"paper": "an object", "title": "text", "summary": "text", "id": "text",
             "organization": "an object", "organization.name": "text",
             "organization.fullname": "text", "authors": "a list", "publishedAt": "text",
             "submittedOnDailyAt": "text"}


def load_json(data: bytes | str, where: str, what: str = "not valid JSON") -> Any:
    """Decode JSON, turning every way it can fail (nesting too deep included) into ParseError."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(where, f"{what} ({exc})", "check the capture or the URL") from None
    except RecursionError:
        raise ParseError(where, f"{what} (nested too deep)", "check the capture or the URL") from None


def parse_hf_json(data: bytes | str, where: str, warnings: list[str] | None = None
                  ) -> list[Listing]:
    """Parse the API's JSON (a list of items with `paper` inside) into listings, in order."""
    return listings_from_items(load_json(data, where), where, warnings)


def listings_from_items(items: Any, where: str, warnings: list[str] | None = None
                        ) -> list[Listing]:
    """Turn daily-papers items (from the API or embedded in the HTML page) into listings.

    An entry with a field of the wrong type is skipped with a warning (appended to
    `warnings`) naming the entry and the field; a missing optional field is no error.
    """
    if isinstance(items, dict) and isinstance(items.get("dailyPapers"), list):
        items = items["dailyPapers"]
    elif isinstance(items, dict) and isinstance(items.get("paper"), dict):
        items = [items]  # a single item
    if not isinstance(items, list):
        raise ParseError(where, "expected a JSON list of daily papers",
                         "point the source at /api/daily_papers")
    papers: list[Listing] = []
    skipped: list[str] = []
    for index, item in enumerate(items, 1):
        try:
            if not isinstance(item, dict):
                raise _WrongType("paper", item)
            papers.append(_listing(item, len(papers) + 1, f"{where}: item {index}"))
        except _Skipped as exc:
            skipped.append(f"warning: {where}: item {index} skipped: {exc}")
    if warnings is not None:
        warnings += skipped
    if skipped and not papers:
        raise ParseError(where, f"none of its {len(items)} entries is valid ({skipped[0]})",
                         "check the source: it may have changed its format")
    return papers


def _field(container: dict[str, Any], key: str, name: str, kind: type) -> Any:
    """`container[key]` when it is of `kind` or missing (None); else the entry is skipped."""
    value = container.get(key)
    if value is not None and not isinstance(value, kind):
        raise _WrongType(name, value)
    return value


def _listing(item: dict[str, Any], rank: int, where: str) -> Listing:
    # Daily and search items wrap the paper in `paper`; a bare paper object is its own.
    inner = _field(item, "paper", "paper", dict) or item
    title = one_line(_field(item, "title", "title", str) or _field(inner, "title", "title", str) or "")
    if not title:
        raise _Skipped("it has no title")
    abstract = " ".join((_field(inner, "summary", "summary", str)
                         or _field(item, "summary", "summary", str) or "").split())
    arxiv_id = normalize_arxiv_id(_field(inner, "id", "id", str) or "")
    org = (_field(inner, "organization", "organization", dict)
           or _field(item, "organization", "organization", dict) or {})
    for key in ("name", "fullname"):
        _field(org, key, f"organization.{key}", str)
    for key in ("submittedOnDailyAt", "publishedAt"):
        _field(inner, key, key, str)
        _field(item, key, key, str)
    authors = tuple(one_line(str(a.get("name") or "")) for a in
                    _field(inner, "authors", "authors", list) or []
                    if isinstance(a, dict) and isinstance(a.get("name"), str) and not a.get("hidden"))
    links = [str(u) for u in (inner.get("githubRepo"), inner.get("projectPage"))
             if isinstance(u, str) and u.startswith(("http://", "https://"))]
    links += [u for u in find_links(abstract) if u not in links]
    paper = Paper(
        title=title, abstract=abstract,
        published=_day(inner.get("submittedOnDailyAt") or inner.get("publishedAt")
                       or item.get("publishedAt")),
        org_handle=org.get("name") if isinstance(org, dict) else None,
        org_name=(org.get("fullname") or org.get("name")) if isinstance(org, dict) else None,
        author_count=len(authors) or None, authors=authors,
        links=tuple(links), arxiv_id=arxiv_id,
        page_url=f"https://huggingface.co/papers/{arxiv_id}" if arxiv_id else None,
    )
    return Listing(paper, rank, comments=_count(item.get("numComments")),
                   upvotes=_count(inner.get("upvotes")))


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
