"""Input formats and ways of reading them. Every format yields the same `Listing` records
(a `Paper` at a rank, with the page's counts)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from digest import __version__
from digest.errors import SourceError

USER_AGENT = f"paper-digest/{__version__} (+https://pypi.org/project/paper-digest/)"
# What a folder of captures stands for: its files with these endings (README says which).
SNAPSHOT_SUFFIXES = (".txt", ".json", ".html", ".xml", ".rss", ".atom")


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Turn the PATH arguments into snapshot files: a folder stands for its captures."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in SNAPSHOT_SUFFIXES and p.is_file())
            if not found:
                raise SourceError(str(path), f"folder holds no captures ({', '.join(SNAPSHOT_SUFFIXES)})",
                                  "pass snapshot files, or a folder that holds some")
            files.extend(found)
        else:
            files.append(path)
    return files


# The formats a source can be read as (sources.detect maps the structured ones to parsers).
# Here, with the fetch limits and the folder rule, so that the settings and a quiet cycle
# load neither the parsers nor an HTTP client.
FORMATS = ("dailypage", "hf-json", "hf-html", "arxiv", "feed")


@dataclass(frozen=True)
class FetchLimits:
    """What one fetch may cost: bytes after decoding, seconds in all, redirects followed."""

    max_bytes: int = 20_000_000
    deadline: float = 120.0
    max_redirects: int = 5
