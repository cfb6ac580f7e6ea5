"""What is new in a snapshot, given what was seen before. Pure: no store, no clock.

A paper is new when no earlier snapshot showed it, under any of its identities: its arXiv
id (when a source carries one) or its normalised title. A paper that left the page and came
back is not new again, and a changed rank, comment or upvote count never makes it new.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

from digest.models import TITLE_PREFIX, Paper

Known = TypeVar("Known")


def identities(paper: Paper) -> tuple[str, ...]:
    """Every key under which this paper may already be known: its key, then its title."""
    by_title = TITLE_PREFIX + paper.title_key
    if paper.key == by_title:
        return (by_title,)
    return (paper.key, by_title) if paper.matches_by_title else (paper.key,)


def unique_papers(papers: Iterable[Paper]) -> list[Paper]:
    """Drop repeats of a paper within one snapshot, keeping its first (highest) position."""
    seen: set[str] = set()
    kept: list[Paper] = []
    for paper in papers:
        ids = identities(paper)
        if any(i in seen for i in ids):
            continue
        seen.update(ids)
        kept.append(paper)
    return kept


def split_new(
    papers: Sequence[Paper], known: Mapping[str, Known]
) -> tuple[list[Paper], list[tuple[Paper, Known]]]:
    """Split page-ordered papers into (new, [(seen paper, what it is known as)])."""
    new: list[Paper] = []
    seen: list[tuple[Paper, Known]] = []
    for paper in papers:
        for identity in identities(paper):
            if identity in known:
                seen.append((paper, known[identity]))
                break
        else:
            if not paper.update:  # an update of a paper never seen is still not news
                new.append(paper)
    return new, seen
