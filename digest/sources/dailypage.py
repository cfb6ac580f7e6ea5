"""Parse the text of the Hugging Face "Daily Papers" page into entries.

The page is a run of non-blank lines: chrome (`new`, `Subscribe`, ...) ending with the
page date (`Mar 13`), then per paper a title line, an abstract line and an optional
metadata block: an organisation line (`microsoft Microsoft`) or `• N authors`, a `·`
line, and the paper date with an optional comment count (`Oct 31, 2024 4`, `Jul 22 1`).
Dates may lack a year; they are resolved once the capture date is known (see capture.py).
"""

from __future__ import annotations

import re
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
    numbered = [(n, line.strip()) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
    start = None
    for index, (_, line) in enumerate(numbered[:_CHROME_LINES]):
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
        raise ParseError(where, f"bad page date {numbered[start - 1][1]!r}", "fix the page header")
    entries: list[Entry] = []
    i, count = start, len(numbered)
    while i < count:
        lineno, title = numbered[i]
        if _is_metadata(title):
            raise ParseError(
                f"{where}:{lineno}", f"expected a paper title, found {title[:40]!r}",
                "check that the capture is complete and unedited",
            )
        if i + 1 >= count or _is_metadata(numbered[i + 1][1]):
            raise ParseError(
                f"{where}:{lineno}", f"truncated entry: {title[:60]!r} has no abstract",
                "re-capture the page or remove the incomplete entry",
            )
        entry = Entry(rank=len(entries) + 1, title=title, abstract=numbered[i + 1][1])
        after_abstract = i + 2
        i = _parse_metadata(numbered, after_abstract, entry, where)
        entries.append(entry)
        if i == after_abstract == count and cut_short(text, entry.abstract):
            raise ParseError(
                f"{where}:{numbered[-1][0]}",
                f"truncated entry: {title[:60]!r} ends mid-abstract (no final newline, and the "
                "abstract does not end like a sentence or a URL)",
                "re-capture the page or remove the incomplete entry",
            )
    return Page(month=month, day=day, entries=entries)


_SENTENCE_ENDS = tuple(".?!)\"'”’»")


def cut_short(text: str, last_abstract: str) -> bool:
    """True when a capture ends inside its last abstract: no final newline, and the abstract
    does not end like a sentence (`.`, `?`, `!`, `)`, a closing quote) or with a URL."""
    if text.endswith("\n") or last_abstract.endswith(_SENTENCE_ENDS):
        return False
    pieces = [piece for piece in split_urls(last_abstract) if piece[0]]
    return not (pieces and pieces[-1][1])


def _is_metadata(line: str) -> bool:
    return line == SEPARATOR or AUTHORS.fullmatch(line) is not None


def _parse_metadata(numbered: list[tuple[int, str]], i: int, entry: Entry, where: str) -> int:
    """Read the optional metadata block at `i` into `entry`; return the index after it."""
    count = len(numbered)
    if i >= count:
        return i
    line = numbered[i][1]
    has_block = AUTHORS.fullmatch(line) is not None or line == SEPARATOR or (
        i + 1 < count and numbered[i + 1][1] == SEPARATOR
    )
    if not has_block:
        return i
    while i < count and numbered[i][1] != SEPARATOR:
        lineno, line = numbered[i]
        authors = AUTHORS.fullmatch(line)
        if authors:
            entry.author_count = int(authors[1])
        elif entry.org_handle is None:
            handle, _, name = line.partition(" ")
            entry.org_handle, entry.org_name = handle, (name.strip() or handle)
        else:
            raise ParseError(f"{where}:{lineno}", f"unexpected line {line[:40]!r} in metadata",
                             "check that the capture is complete and unedited")
        i += 1
    if i + 1 >= count:
        raise ParseError(f"{where}:{numbered[-1][0]}",
                         f"truncated entry: {entry.title[:60]!r} has no paper date after '·'",
                         "re-capture the page or remove the incomplete entry")
    lineno, line = numbered[i + 1]
    found = PAPER_DATE.fullmatch(line)
    if not found:
        raise ParseError(f"{where}:{lineno}", f"bad paper date {line[:40]!r}",
                         "expected a date like 'Oct 31, 2024 4' or 'Jul 22'")
    entry.month, entry.day = MONTHS[found[1]], int(found[2])
    entry.year = int(found[3]) if found[3] else None
    entry.comments = int(found[4]) if found[4] else 0
    if not 1 <= entry.day <= 31:
        raise ParseError(f"{where}:{lineno}", f"bad paper date {line[:40]!r}",
                         "expected a date like 'Oct 31, 2024 4' or 'Jul 22'")
    return i + 2
