"""Read snapshot files and folders from disk into `Snapshot` values (the I/O edge of parsing)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from pathlib import Path

from digest.capture import MONTH_NAMES, capture_from_name, infer_capture_date, is_future, resolve_yearless
from digest.errors import ParseError, SourceError
from digest.models import Listing, Paper, Snapshot
from digest.sources import SNAPSHOT_SUFFIXES as SNAPSHOT_SUFFIXES
from digest.sources import expand_paths as expand_paths
from digest.sources.dailypage import Entry, parse_page
from digest.sources.detect import detect, parser_for
from digest.text import find_links

SOURCE_NAME = "hf-daily-page"
def read_snapshot(path: Path, captured_at: datetime | None, now: datetime, fmt: str = "auto",
                  source: str | None = None) -> Snapshot:
    """Read, hash and parse one snapshot file, resolving its capture time and paper dates."""
    where = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SourceError(where, "no such file", "check the path") from None
    except OSError as exc:
        raise SourceError(where, f"cannot read ({exc.strerror})", "check the file's permissions") from None
    if fmt == "auto":
        fmt = detect(raw)
    if fmt != "dailypage":
        moment = captured_at or capture_from_name(path.name)
        if moment is None:
            moment = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        return parse_snapshot(raw, where, fmt, moment, now, source or fmt)
    return parse_page_snapshot(raw, where, captured_at or capture_from_name(path.name), now,
                               source or SOURCE_NAME)


def parse_page_snapshot(raw: bytes, where: str, moment: datetime | None, now: datetime,
                        source: str) -> Snapshot:
    """A snapshot of page text: captured at `moment`, else at the date inferred from the page
    (a capture in a file, or the same text served over http and fetched at `moment`)."""
    digest = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError(where, f"not UTF-8 text (byte {exc.start})",
                         "save the capture as UTF-8 text") from None
    del raw
    page = parse_page(text, where)
    del text
    if not page.entries:
        raise ParseError(where, "the page lists no papers", "re-capture the page")

    warnings: list[str] = []
    inferred = False
    page_date = f"{MONTH_NAMES[page.month - 1]} {page.day}"
    if moment is None:
        moment, why = _infer(page.month, page.day, page.entries, now.date(), where)
        inferred = True
        warnings.append(
            f"warning: {where}: capture date inferred as {moment.date().isoformat()} from the "
            f"page date '{page_date}': {why} — pass --captured-at YYYY-MM-DD or put the date "
            "in the file name (2026-03-13.txt) to set it"
        )
    elif (moment.month, moment.day) != (page.month, page.day):
        warnings.append(
            f"warning: {where}: page date '{page_date}' differs from capture date "
            f"{moment.date().isoformat()} — check the file name or --captured-at"
        )
    if is_future(moment, now):
        raise ParseError(where, f"capture date {moment.date().isoformat()} is in the future",
                         "fix the date in the file name or pass --captured-at YYYY-MM-DD")
    listings = tuple(_listing(entry, moment.date(), where) for entry in page.entries)
    return Snapshot(path=where, source=source, captured_at=moment, sha256=digest,
                    listings=listings, page_date=page_date, date_inferred=inferred,
                    warnings=tuple(warnings))


def parse_snapshot(raw: bytes, where: str, fmt: str, captured_at: datetime, now: datetime,
                   source: str) -> Snapshot:
    """A snapshot of a structured format (JSON API, HTML page, feeds), captured at a known time."""
    if is_future(captured_at, now):
        raise ParseError(where, f"capture date {captured_at.date().isoformat()} is in the future",
                         "fix the date in the file name or pass --captured-at YYYY-MM-DD")
    warnings: list[str] = []
    listings = parser_for(fmt)(raw, where, warnings)
    if not listings:
        raise ParseError(where, f"no papers in this {fmt} snapshot",
                         "check the source: an empty listing is treated as a failure")
    return Snapshot(path=where, source=source, captured_at=captured_at,
                    sha256=hashlib.sha256(raw).hexdigest(), listings=tuple(listings),
                    warnings=tuple(warnings))


def _infer(month: int, day: int, entries: list[Entry], today: date,
           where: str) -> tuple[datetime, str]:
    dated = []
    for entry in entries:
        if entry.year is not None and entry.month is not None and entry.day is not None:
            try:
                dated.append(date(entry.year, entry.month, entry.day))
            except ValueError:
                continue
    yearless = [(e.month, e.day) for e in entries
                if e.year is None and e.month is not None and e.day is not None]
    found = infer_capture_date(month, day, dated, yearless, today)
    if found is None:
        raise ParseError(where, "cannot infer the capture year from the page",
                         "pass --captured-at YYYY-MM-DD")
    return datetime(found.day.year, found.day.month, found.day.day, tzinfo=UTC), found.reason


def _listing(entry: Entry, captured: date, where: str) -> Listing:
    published = None
    if entry.month is not None and entry.day is not None:
        try:
            published = (date(entry.year, entry.month, entry.day) if entry.year is not None
                         else resolve_yearless(entry.month, entry.day, captured))
        except ValueError:
            raise ParseError(where, f"paper {entry.rank} ({entry.title[:50]!r}) has an impossible "
                             f"date {entry.month}/{entry.day}", "fix the paper date") from None
    paper = Paper(
        title=entry.title,
        abstract=entry.abstract,
        published=published,
        org_handle=entry.org_handle,
        org_name=entry.org_name,
        author_count=entry.author_count,
        links=find_links(entry.abstract),
    )
    return Listing(paper, entry.rank, comments=entry.comments)
