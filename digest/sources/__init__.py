"""Input formats and ways of reading them. Every format yields the same `Listing` records
(a `Paper` at a rank, with the page's counts)."""

from __future__ import annotations

from dataclasses import dataclass

# The formats a source can be read as (sources.detect maps the structured ones to parsers).
# Here, with the fetch limits, so the settings load neither the parsers nor an HTTP client.
FORMATS = ("dailypage", "hf-json", "hf-html", "arxiv", "feed")


@dataclass(frozen=True)
class FetchLimits:
    """What one fetch may cost: bytes after decoding, seconds in all, redirects followed."""

    max_bytes: int = 20_000_000
    deadline: float = 120.0
    max_redirects: int = 5
