"""Parse the text of the Hugging Face "Daily Papers" page into entries.

The page is a run of non-blank lines: chrome (`new`, `Subscribe`, ...) ending with the
page date (`Mar 13`), then per paper a title line, an abstract line and an optional
metadata block: an organisation line (`microsoft Microsoft`) or `• N authors`, a `·`
line, and the paper date with an optional comment count (`Oct 31, 2024 4`, `Jul 22 1`).
Dates may lack a year; they are resolved once the capture date is known (see capture.py).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from digest.capture import MONTH_NAMES
from digest.errors import ParseError
from digest.text import split_urls

MONTHS = {m: i for i, m in enumerate(MONTH_NAMES, 1)}
_MONTH = "(" + "|".join(MONTHS) + ")"
PAGE_DATE = re.compile(_MONTH + r" (\d{1,2})")
PAPER_DATE = re.compile(_MONTH + r" (\d{1,2})(?:, (\d{4}))?(?: (\d+))?")
AUTHORS = re.compile(r"•\s*(\d+)\s+authors?")
SEPARATOR = "·"
# Every metadata line starts with one of these: a title or an abstract that starts with
# neither needs no closer look.
_META_STARTS = "•·"
# The page date must appear within the first lines: the chrome is short.
_CHROME_LINES = 12


@dataclass(slots=True)
class Entry:
    """One paper as the page text shows it; `year` is None when the page omits it."""

    rank: int
    title: str
    abstract: str
    org_handle: str | None = None
    org_name: str | None = None
    author_count: int | None = None
    month: int | None = None
    day: int | None = None
    year: int | None = None
    comments: int | None = None


# An entry's fields in `Entry` order: the form the parser makes, cheaper to make and to keep
# than an Entry (a page of 50,000 papers makes as many).
Row = tuple[int, str, str, str | None, str | None, int | None, int | None, int | None,
            int | None, int | None]


@dataclass(slots=True)
class Page:
    """The page date (month, day; no year) and the entries in page order."""

    month: int
    day: int
    entries: list[Entry]


def parse_page(text: str, where: str) -> Page:
    """Parse page text into entries; raise ParseError naming the line on anything unexpected."""
    # Split on LF only: str.splitlines() also breaks at \x0b, \x0c, \x85 and U+2028, which
    # can sit inside an abstract.
    month, day, rows = parse_rows(text.split("\n"), where)
    return Page(month=month, day=day, entries=[Entry(*row) for row in rows])


def parse_rows(raw_lines: Sequence[str], where: str, *,
               fast: bool = True) -> tuple[int, int, list[Row]]:
    """The page date (month, day) and the entries, as rows, of the page's lines (its text
    split at LF); raise ParseError naming the line on anything unexpected.

    `fast` reads the common metadata blocks (`• N authors` or an organisation, `·`, a date)
    inline and leaves every other block to the general reader; `fast=False` reads every
    block the general way (the tests compare the two)."""
    lines = tuple(filter(None, map(str.strip, raw_lines)))  # line numbers: counted on error
    start = None
    for index, line in enumerate(lines[:_CHROME_LINES]):
        page_date = PAGE_DATE.fullmatch(line)
        if page_date:
            start = index + 1
            month, day = MONTHS[page_date[1]], int(page_date[2])
            break
    if start is None:
        raise ParseError(
            where,
            "not a Daily Papers page (no page date like 'Mar 13' in its first lines)",
            "pass a text capture of https://huggingface.co/papers",
        )
    if not 1 <= day <= 31:
        raise ParseError(where, f"bad page date {lines[start - 1]!r}", "fix the page header")
    rows: list[Row] = []
    i, count = start, len(lines)
    while i < count:
        title = lines[i]
        if title[0] in _META_STARTS and _is_metadata(title):
            raise ParseError(
                _at(where, raw_lines, i), f"expected a paper title, found {title[:40]!r}",
                "check that the capture is complete and unedited",
            )
        if i + 1 >= count or (lines[i + 1][0] in _META_STARTS and _is_metadata(lines[i + 1])):
            raise ParseError(
                _at(where, raw_lines, i), f"truncated entry: {title[:60]!r} has no abstract",
                "re-capture the page or remove the incomplete entry",
            )
        abstract = lines[i + 1]
        after_abstract = i = i + 2
        rank = len(rows) + 1
        if fast and i + 2 < count and lines[i + 1] == SEPARATOR:
            # The common block: `• N authors` or an organisation line, `·`, a paper date.
            line = lines[i]
            authors = _author_count(line) if line[0] == "•" else None
            paper_date = _paper_date(lines[i + 2])
            if paper_date and (authors is not None or line[0] not in _META_STARTS):
                if authors is not None:
                    rows.append((rank, title, abstract, None, None, authors, *paper_date))
                else:
                    handle, _, name = line.partition(" ")
                    rows.append((rank, title, abstract, handle, name.strip() or handle, None,
                                 *paper_date))
                i += 3
                continue
        if fast and (i >= count or (lines[i][0] not in _META_STARTS
                                    and (i + 1 >= count or lines[i + 1] != SEPARATOR))):
            # No metadata block: the next line is a title (or the page ends).
            rows.append((rank, title, abstract, None, None, None, None, None, None, None))
        else:
            entry = Entry(rank, title, abstract)
            i = _parse_metadata(lines, i, entry, where, raw_lines)
            rows.append((rank, title, abstract, entry.org_handle, entry.org_name,
                         entry.author_count, entry.month, entry.day, entry.year, entry.comments))
        if i == after_abstract == count and cut_short(raw_lines[-1] == "", abstract):
            raise ParseError(
                _at(where, raw_lines, -1),
                f"truncated entry: {title[:60]!r} ends mid-abstract (no final newline, and the "
                "abstract does not end like a sentence or a URL)",
                "re-capture the page or remove the incomplete entry",
            )
    return month, day, rows


# A page repeats its author counts and paper dates: each read once, not once per paper.
@functools.lru_cache(maxsize=4096)
def _author_count(line: str) -> int | None:
    """N of a `• N authors` line, else None."""
    authors = AUTHORS.fullmatch(line)
    return int(authors[1]) if authors else None


@functools.lru_cache(maxsize=4096)
def _paper_date(line: str) -> tuple[int, int, int | None, int] | None:
    """(month, day, year, comments) of a paper date line, else None (also for a bad day)."""
    found = PAPER_DATE.fullmatch(line)
    if not found or not 1 <= int(found[2]) <= 31:
        return None
    return (MONTHS[found[1]], int(found[2]), int(found[3]) if found[3] else None,
            int(found[4]) if found[4] else 0)


def _at(where: str, raw_lines: Sequence[str], index: int) -> str:
    """`where:N`, N the line number of the `index`-th non-blank line (counted for errors only)."""
    numbers = [n for n, line in enumerate(raw_lines, 1) if line.strip()]
    return f"{where}:{numbers[index]}"


_SENTENCE_ENDS = tuple(".?!)\"'”’»")


def cut_short(final_newline: bool, last_abstract: str) -> bool:
    """True when a capture ends inside its last abstract: no final newline, and the abstract
    does not end like a sentence (`.`, `?`, `!`, `)`, a closing quote) or with a URL."""
    if final_newline or last_abstract.endswith(_SENTENCE_ENDS):
        return False
    pieces = [piece for piece in split_urls(last_abstract) if piece[0]]
    return not (pieces and pieces[-1][1])


def _is_metadata(line: str) -> bool:
    return line == SEPARATOR or AUTHORS.fullmatch(line) is not None


def _parse_metadata(lines: Sequence[str], i: int, entry: Entry, where: str,
                    raw_lines: Sequence[str]) -> int:
    """Read the optional metadata block at `i` into `entry`; return the index after it."""
    count = len(lines)
    if i >= count:
        return i
    line = lines[i]
    has_block = AUTHORS.fullmatch(line) is not None or line == SEPARATOR or (
        i + 1 < count and lines[i + 1] == SEPARATOR
    )
    if not has_block:
        return i
    while i < count and lines[i] != SEPARATOR:
        line = lines[i]
        authors = AUTHORS.fullmatch(line)
        if authors:
            entry.author_count = int(authors[1])
        elif entry.org_handle is None:
            handle, _, name = line.partition(" ")
            entry.org_handle, entry.org_name = handle, (name.strip() or handle)
        else:
            raise ParseError(_at(where, raw_lines, i), f"unexpected line {line[:40]!r} in metadata",
                             "check that the capture is complete and unedited")
        i += 1
    if i + 1 >= count:
        raise ParseError(_at(where, raw_lines, -1),
                         f"truncated entry: {entry.title[:60]!r} has no paper date after '·'",
                         "re-capture the page or remove the incomplete entry")
    line = lines[i + 1]
    found = PAPER_DATE.fullmatch(line)
    if not found:
        raise ParseError(_at(where, raw_lines, i + 1), f"bad paper date {line[:40]!r}",
                         "expected a date like 'Oct 31, 2024 4' or 'Jul 22'")
    entry.month, entry.day = MONTHS[found[1]], int(found[2])
    entry.year = int(found[3]) if found[3] else None
    entry.comments = int(found[4]) if found[4] else 0
    if not 1 <= entry.day <= 31:
        raise ParseError(_at(where, raw_lines, i + 1), f"bad paper date {line[:40]!r}",
                         "expected a date like 'Oct 31, 2024 4' or 'Jul 22'")
    return i + 2
