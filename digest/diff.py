"""What is new in a snapshot, given what was seen before. Pure: no store, no clock.

A paper is new when no earlier snapshot showed it, under any of its identities: its arXiv
id (when a source carries one) or its normalised title. A paper that left the page and came
back is not new again, and a changed rank, comment or upvote count never makes it new.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

from digest.models import TITLE_PREFIX, Listing, Paper

Known = TypeVar("Known")


def identities(paper: Paper) -> tuple[str, ...]:
    """Every key under which this paper may already be known: its key, then its title."""
    by_title = TITLE_PREFIX + paper.title_key
    if paper.key == by_title:
        return (by_title,)
    return (paper.key, by_title) if paper.matches_by_title else (paper.key,)


def unique_listings(listings: Iterable[Listing]) -> list[Listing]:
    """Drop repeats of a paper within one snapshot, keeping its first (highest) position."""
    seen: set[str] = set()
    kept: list[Listing] = []
    for listing in listings:
        ids = identities(listing.paper)
        if seen.isdisjoint(ids):
            seen.update(ids)
            kept.append(listing)
    return kept


def split_new(
    listings: Sequence[Listing], known: Mapping[str, Known]
) -> tuple[list[Listing], list[tuple[Listing, Known]]]:
    """Split a page's listings into (new, [(seen listing, what its paper is known as)])."""
    new: list[Listing] = []
    seen: list[tuple[Listing, Known]] = []
    for listing in listings:
        for identity in identities(listing.paper):
            if identity in known:
                seen.append((listing, known[identity]))
                break
        else:
            if not listing.paper.update:  # an update of a paper never seen is still not news
                new.append(listing)
    return new, seen
