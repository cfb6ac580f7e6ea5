"""When was a snapshot taken? Pure rules: explicit date, file name, else inferred from the page."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

_NAME_DATE = re.compile(
    r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?:[T_ ](\d{2})[:\-h]?(\d{2}))?(?!\d)"
)
# The month names as the page writes them (and as the outputs do: locale-independent).
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# How far back inference looks for a year where the page date fits.
_YEARS_BACK = 60


def parse_iso_capture(text: str) -> datetime | None:
    """Parse `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM` (UTC); None if it is neither."""
    match = _NAME_DATE.fullmatch(text.strip())
    if not match:
        return None
    return _datetime_from_match(match)


def capture_from_name(name: str) -> datetime | None:
    """Return the capture time written in a file name (`2026-03-13.txt`, `x-2026-03-13T08:00.txt`)."""
    for match in _NAME_DATE.finditer(name):
        found = _datetime_from_match(match)
        if found is not None:
            return found
    return None


def _datetime_from_match(match: re.Match[str]) -> datetime | None:
    year, month, day, hour, minute = match.groups()
    try:
        return datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), tzinfo=UTC
        )
    except ValueError:
        return None


@dataclass(frozen=True)
class Inferred:
    """An inferred capture date, and which rule decided it (for the warning)."""

    day: date
    reason: str


def infer_capture_date(
    page_month: int,
    page_day: int,
    dated: Iterable[date],
    yearless: Iterable[tuple[int, int]],
    today: date,
) -> Inferred | None:
    """Give the page date its year; None when no year fits.

    The page shows a year only for paper dates outside the capture year, so when any date
    carries one, the capture year is the year after the newest shown (a capture two years
    later would show the papers of the year between with their year too), or the first
    year after that which puts no year-less paper date after the capture. Otherwise it is
    the latest year that puts the page date in the past (preferring one where no year-less
    paper date falls after it).
    """
    newest = max(dated, default=None)
    yearless = list(yearless)
    if newest is not None:
        first: date | None = None
        for year in range(newest.year + 1, today.year + 1):
            candidate = _on(year, page_month, page_day)
            if candidate is None or candidate > today:
                continue
            first = first or candidate
            if _yearless_fit(year, yearless, candidate):
                return Inferred(candidate, f"the newest year on the page is {newest.year}")
        if first is not None:
            return Inferred(first, f"the newest year on the page is {newest.year}")
        return None
    fallback: date | None = None
    for year in range(today.year, today.year - _YEARS_BACK, -1):
        candidate = _on(year, page_month, page_day)
        if candidate is None or candidate > today:
            continue
        if _yearless_fit(year, yearless, candidate):
            return Inferred(candidate, "the latest year that puts the page date in the past")
        fallback = fallback or candidate
    return Inferred(fallback, "the latest year that puts the page date in the past") if fallback else None


def _on(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:  # Feb 29 in a common year
        return None


def _yearless_fit(year: int, yearless: list[tuple[int, int]], captured: date) -> bool:
    """True when no year-less paper date, read in `year`, falls after the capture date."""
    for month, day in yearless:
        try:
            if date(year, month, day) > captured:
                return False
        except ValueError:
            continue
    return True


def resolve_yearless(month: int, day: int, captured: date) -> date:
    """Give a year-less paper date the capture year, or the year before if it would be later."""
    for year in (captured.year, captured.year - 1, captured.year - 2, captured.year - 3):
        try:
            resolved = date(year, month, day)
        except ValueError:  # Feb 29: go back to the last leap year
            continue
        if resolved <= captured:
            return resolved
    return date(captured.year - 4, month, day)


def is_future(moment: datetime, now: datetime) -> bool:
    """True when a capture time lies more than a day ahead of `now` (a day of slack for zones)."""
    return moment > now + timedelta(days=1)
