"""The Hugging Face daily papers JSON API (`/api/daily_papers`): a list of items."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from digest.errors import ParseError
from digest.models import Paper, normalize_arxiv_id
from digest.sources.dailypage import find_links
from digest.text import one_line


def parse_hf_json(data: bytes | str, where: str) -> list[Paper]:
    """Parse the API's JSON (a list of items with `paper` inside) into papers, in order."""
    try:
        items = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(where, f"not valid JSON ({exc})", "check the capture or the URL") from None
    return papers_from_items(items, where)


def papers_from_items(items: Any, where: str) -> list[Paper]:
    """Turn daily-papers items (from the API or embedded in the HTML page) into papers."""
    if isinstance(items, dict) and isinstance(items.get("dailyPapers"), list):
        items = items["dailyPapers"]
    elif isinstance(items, dict) and isinstance(items.get("paper"), dict):
        items = [items]  # a single item
    if not isinstance(items, list):
        raise ParseError(where, "expected a JSON list of daily papers",
                         "point the source at /api/daily_papers")
    papers = []
    for rank, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise ParseError(f"{where}: item {rank}", "not an object", "check the capture")
        papers.append(_paper(item, rank, f"{where}: item {rank}"))
    return papers


def _paper(item: dict[str, Any], rank: int, where: str) -> Paper:
    inner = item.get("paper") if isinstance(item.get("paper"), dict) else {}
    assert isinstance(inner, dict)
    title = one_line(str(item.get("title") or inner.get("title") or ""))
    if not title:
        raise ParseError(where, "has no title", "check the capture")
    abstract = " ".join(str(inner.get("summary") or item.get("summary") or "").split())
    arxiv_id = normalize_arxiv_id(str(inner.get("id") or ""))
    org = inner.get("organization") or item.get("organization") or {}
    authors = tuple(one_line(str(a.get("name") or "")) for a in inner.get("authors") or []
                    if isinstance(a, dict) and a.get("name") and not a.get("hidden"))
    links = [str(u) for u in (inner.get("githubRepo"), inner.get("projectPage"))
             if isinstance(u, str) and u.startswith(("http://", "https://"))]
    links += [u for u in find_links(abstract) if u not in links]
    return Paper(
        title=title, abstract=abstract, rank=rank,
        published=_day(inner.get("submittedOnDailyAt") or inner.get("publishedAt")
                       or item.get("publishedAt")),
        org_handle=org.get("name") if isinstance(org, dict) else None,
        org_name=(org.get("fullname") or org.get("name")) if isinstance(org, dict) else None,
        author_count=len(authors) or None, authors=authors,
        comments=_count(item.get("numComments")), upvotes=_count(inner.get("upvotes")),
        links=tuple(links), arxiv_id=arxiv_id,
        page_url=f"https://huggingface.co/papers/{arxiv_id}" if arxiv_id else None,
    )


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
