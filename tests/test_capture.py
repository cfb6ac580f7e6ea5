"""Capture dates: explicit > file name > inferred from the page, and year-less paper dates."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from conftest import SHARED_SNAPSHOTS, entry, page

from digest.capture import capture_from_name, infer_capture_date, resolve_yearless
from digest.errors import ParseError
from digest.sources.files import read_snapshot

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("2026-03-13.txt", datetime(2026, 3, 13, tzinfo=UTC)),
        ("dailypapers-2026-03-13T08:00.txt", datetime(2026, 3, 13, 8, 0, tzinfo=UTC)),
        ("hf_2025-12-31_0915.txt", datetime(2025, 12, 31, 9, 15, tzinfo=UTC)),
        ("capture.txt", None),
        ("2026-13-40.txt", None),
        ("v12026-03-13.txt", None),
    ],
)
def test_capture_from_name(name: str, expected: datetime | None) -> None:
    assert capture_from_name(name) == expected


@pytest.mark.parametrize(
    ("page_date", "dated", "yearless", "today", "expected", "why"),
    [
        ((3, 13), [], [], date(2026, 11, 25), date(2026, 3, 13), "latest year not in the future"),
        ((12, 1), [], [], date(2026, 11, 25), date(2025, 12, 1), "Dec 1 2026 is in the future"),
        ((3, 13), [date(2026, 4, 1)], [], date(2027, 6, 1), date(2027, 3, 13),
         "must be later than every dated paper"),
        ((3, 13), [date(2026, 3, 13)], [], date(2026, 11, 25), None,
         "a paper dated the capture day itself rules the year out"),
        ((3, 13), [], [(7, 22)], date(2026, 11, 25), date(2026, 3, 13),
         "a year-less Jul 22 lies after Mar 13 in every year: fall back to rules (1) and (2)"),
        ((3, 13), [], [(3, 14)], date(2026, 3, 13), date(2026, 3, 13),
         "same fallback when the page is a day ahead of its papers' zone"),
        ((8, 1), [], [(7, 22)], date(2026, 11, 25), date(2026, 8, 1),
         "year-less Jul 22 before Aug 1 fits"),
        ((2, 29), [], [], date(2026, 11, 25), date(2024, 2, 29), "leap day only in leap years"),
        # Issue 8: a real capture of Oct 31, 2025 showed Nov 30, 2024 as its newest dated paper
        # and year-less dates from Jan to Oct; "the latest year" made it 2026-10-31.
        ((10, 31), [date(2024, 11, 30), date(2023, 5, 2)], [(1, 7), (6, 2), (10, 30)],
         date(2026, 11, 25), date(2025, 10, 31), "the year after the newest year shown"),
        ((2, 29), [date(2022, 12, 1)], [(2, 3)], date(2026, 11, 25), date(2024, 2, 29),
         "no Feb 29 in 2023: the first year after that with one"),
        ((1, 21), [date(2024, 11, 30)], [(3, 2)], date(2025, 6, 1), date(2025, 1, 21),
         "no later year is past yet: the year after the newest shown"),
    ],
)
def test_infer_capture_date(page_date: tuple[int, int], dated: list[date],
                            yearless: list[tuple[int, int]], today: date,
                            expected: date | None, why: str) -> None:
    got = infer_capture_date(page_date[0], page_date[1], dated, yearless, today)
    assert (got.day if got else None) == expected, why


@pytest.mark.parametrize(
    ("month", "day", "captured", "expected"),
    [
        (7, 22, date(2026, 11, 25), date(2026, 7, 22)),
        (12, 30, date(2026, 1, 5), date(2025, 12, 30)),
        (3, 13, date(2026, 3, 13), date(2026, 3, 13)),
        (2, 29, date(2026, 3, 1), date(2024, 2, 29)),
    ],
)
def test_resolve_yearless(month: int, day: int, captured: date, expected: date) -> None:
    assert resolve_yearless(month, day, captured) == expected


def test_precedence_explicit_over_file_name_over_page(tmp_path: Path) -> None:
    path = tmp_path / "2026-03-13.txt"
    path.write_text(page(entry("T", date="Mar 12 2")))
    explicit = read_snapshot(path, datetime(2026, 3, 14, tzinfo=UTC), NOW)
    named = read_snapshot(path, None, NOW)
    assert explicit.captured_at.date() == date(2026, 3, 14)
    assert "differs from capture date" in explicit.warnings[0]
    assert named.captured_at.date() == date(2026, 3, 13) and named.warnings == ()
    unnamed = tmp_path / "capture.txt"
    unnamed.write_bytes(path.read_bytes())
    inferred = read_snapshot(unnamed, None, NOW)
    assert inferred.date_inferred and inferred.captured_at.date() == date(2026, 3, 13)
    assert inferred.warnings[0] == (
        f"warning: {unnamed}: capture date inferred as 2026-03-13 from the page date 'Mar 13': "
        "the latest year that puts the page date in the past — pass --captured-at YYYY-MM-DD "
        "or put the date in the file name (2026-03-13.txt) to set it"
    )


def test_the_newest_year_shown_decides_and_the_warning_says_so(tmp_path: Path) -> None:
    path = tmp_path / "capture.txt"
    path.write_text(page(entry("Old", date="Nov 30, 2024"), entry("Recent", date="Oct 30"),
                         entry("Spring", date="Jan 7"), header="Oct 31"))
    snap = read_snapshot(path, None, NOW)
    assert snap.captured_at.date() == date(2025, 10, 31)
    assert [n.paper.published for n in snap.listings] == [date(2024, 11, 30), date(2025, 10, 30),
                                                  date(2025, 1, 7)]
    assert snap.warnings[0].startswith(
        f"warning: {path}: capture date inferred as 2025-10-31 from the page date 'Oct 31': the "
        "newest year on the page is 2024 — ")


@pytest.mark.skipif(not SHARED_SNAPSHOTS.is_dir(), reason="../shared/snapshots not present")
def test_a_real_capture_infers_its_own_date(tmp_path: Path) -> None:
    real = SHARED_SNAPSHOTS / "2026-01-21.txt"  # read in place, through a link without the date
    unnamed = tmp_path / "capture.txt"
    unnamed.symlink_to(real)
    snap = read_snapshot(unnamed, None, NOW)
    assert snap.captured_at.date() == date(2026, 1, 21)
    assert "the newest year on the page is 2025" in snap.warnings[0]


def test_year_less_paper_dates_take_capture_year_or_the_one_before(tmp_path: Path) -> None:
    path = tmp_path / "2026-01-05.txt"
    path.write_text(page(entry("A", date="Jan 4 1"), entry("B", date="Dec 30"), header="Jan 5"))
    snap = read_snapshot(path, None, NOW)
    assert [n.paper.published for n in snap.listings] == [date(2026, 1, 4), date(2025, 12, 30)]
    assert [n.comments for n in snap.listings] == [1, 0]


def test_capture_in_the_future_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "2027-03-13.txt"
    path.write_text(page(entry("T")))
    with pytest.raises(ParseError, match="capture date 2027-03-13 is in the future"):
        read_snapshot(path, None, NOW)


def test_no_year_fits(tmp_path: Path) -> None:
    path = tmp_path / "capture.txt"
    path.write_text(page(entry("T", date="Nov 20, 2026")))  # dated after any Mar 13 <= today
    with pytest.raises(ParseError, match="cannot infer the capture year"):
        read_snapshot(path, None, NOW)


def test_the_inference_warning_is_printed_when_the_snapshot_is_refused_as_out_of_order(
        tmp_path: Path) -> None:
    from click.testing import CliRunner

    from digest.cli.main import main

    newer = tmp_path / "2026-03-13.txt"
    newer.write_text(page(entry("New")))
    older = tmp_path / "capture.txt"
    older.write_text(page(entry("Old", date="Nov 30, 2024"), header="Oct 31"))
    assert CliRunner().invoke(main, ["ingest", str(newer)]).exit_code == 0
    result = CliRunner().invoke(main, ["ingest", str(older)])
    assert result.exit_code == 2
    warning, error = result.stderr.splitlines()
    assert warning.startswith(f"warning: {older}: capture date inferred as 2025-10-31 from the "
                              "page date 'Oct 31': the newest year on the page is 2024")
    assert error.startswith(f"error: {older}: captured 2025-10-31 00:00 but the store already holds")
