"""When was a snapshot taken? Pure rules: explicit date, file name, else inferred from the page."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

_NAME_DATE = re.compile(
    r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?:[T_ ](\d{2})[:\-h]?(\d{2}))?(?!\d)"
)
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


def infer_capture_date(
    page_month: int,
    page_day: int,
    dated: Iterable[date],
    yearless: Iterable[tuple[int, int]],
    today: date,
) -> date | None:
    """Choose the latest year that puts the page date in the past, after every dated paper
    and on or after every year-less paper date; None when no year fits."""
    latest_dated = max(dated, default=None)
    yearless = list(yearless)
    fallback: date | None = None
    for year in range(today.year, today.year - _YEARS_BACK, -1):
        try:
            candidate = date(year, page_month, page_day)
        except ValueError:  # Feb 29 in a common year
            continue
        if candidate > today:
            continue
        if latest_dated is not None and candidate <= latest_dated:
            # Years only get earlier from here: nothing later can satisfy rule (2).
            break
        if _yearless_fit(year, yearless, candidate):
            return candidate
        if fallback is None:
            fallback = candidate
    return fallback


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
