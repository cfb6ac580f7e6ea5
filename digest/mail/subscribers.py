"""Subscribers: who gets the digest, and which papers each of them wants.

Addresses are checked and normalised by email-validator (syntax only: no DNS lookups,
so it works offline and does not leak addresses). One row per inbox: addresses differing
only in case are the same subscriber. A subscriber is active, paused, or unsubscribed;
an unsubscribed address gets nothing again unless it is explicitly added again.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from digest.errors import SubscriberError
from digest.statuses import ACTIVE as ACTIVE
from digest.statuses import PAUSED as PAUSED
from digest.statuses import SUBSCRIBER_STATUSES, SubscriberStatus
from digest.statuses import UNSUBSCRIBED as UNSUBSCRIBED
from digest.store import Store
from digest.store.subscribers import Subscriber as Subscriber
from digest.text import one_line
from digest.topics import parse_topics as parse_topics
from digest.topics import topic_pattern as topic_pattern

STATUSES = SUBSCRIBER_STATUSES
CSV_COLUMNS = ("email", "name", "topics")
# Optional CSV column: "yes" lists the other new papers' titles too (a topic subscriber's).
OTHERS_COLUMN = "list_others"
_YES, _NO = ("yes", "true", "1", "y"), ("no", "false", "0", "n", "")


def consent_state(subscriber: Subscriber | None) -> str:
    """A short fingerprint of an address's subscription state, which any change alters.

    A confirmation link carries the state it was issued for, so it works once: after it is
    used, or after the person unsubscribes, the state differs and the link is refused.
    """
    if subscriber is None:
        return "new"
    seen = f"{subscriber.id}|{subscriber.status}|{subscriber.updated_at}"
    return hashlib.sha256(seen.encode()).hexdigest()[:16]


def normalize_address(raw: str) -> str:
    """Check an address's syntax and return its normalised form (raises SubscriberError)."""
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise SubscriberError(raw, f"not a valid email address ({exc})",
                              "check the spelling, e.g. ada@example.org") from None


def find(store: Store, email: str) -> Subscriber | None:
    """Return the subscriber with this address (any case), if any."""
    address = normalize_address(email)
    with store.read() as tx:
        return tx.subscribers.find(address)


def add(store: Store, email: str, name: str | None = None, topics: str | None = None,
        now: datetime | None = None, *, reactivate: bool = True,
        status: str = ACTIVE, list_others: bool | None = None) -> tuple[Subscriber, str]:
    """Add or update a subscriber; returns it and what happened (added, updated, ...).

    `reactivate=False` (imports) leaves a paused or unsubscribed address as it is, and
    `status` is what a new row starts as (an import keeps who left as having left).
    `list_others` None keeps the setting as it is (off for a new subscriber).
    """
    address = normalize_address(email)
    with store.transaction() as tx:
        return tx.subscribers.add(address, one_line(name)[:200] if name else None, topics,
                                  now or datetime.now(UTC), reactivate=reactivate,
                                  status=SubscriberStatus(status), list_others=list_others)


def by_id(store: Store, subscriber_id: int | None) -> Subscriber | None:
    """The subscriber with this id, if any."""
    with store.read() as tx:
        return tx.subscribers.by_id(subscriber_id)


def set_status(store: Store, email: str, status: str, now: datetime | None = None) -> Subscriber:
    """Pause, resume (active) or unsubscribe an existing subscriber."""
    address = normalize_address(email)
    with store.transaction() as tx:
        found = tx.subscribers.set_status(address, SubscriberStatus(status),
                                          now or datetime.now(UTC))
    if found is None:
        raise SubscriberError(email, "no such subscriber",
                              "see `digest subscribers list` for the addresses on file")
    return found


def set_topics(store: Store, subscriber_id: int, topics: str,
               now: datetime | None = None, *,
               list_others: bool | None = None) -> Subscriber | None:
    """Change a subscriber's topics (and, when given, whether the other papers' titles are
    listed too) only (the preferences page): never their status."""
    with store.transaction() as tx:
        return tx.subscribers.set_topics(subscriber_id, topics, now or datetime.now(UTC),
                                         list_others)


def set_status_by_id(store: Store, subscriber_id: int, status: str) -> bool:
    """Change a subscriber's status by id (unsubscribe links); False when there is none."""
    with store.transaction() as tx:
        return tx.subscribers.set_status_by_id(subscriber_id, SubscriberStatus(status),
                                               datetime.now(UTC))


def all_subscribers(store: Store, status: str | None = None) -> list[Subscriber]:
    """Every subscriber (or those with `status`), oldest first."""
    with store.read() as tx:
        return tx.subscribers.all(SubscriberStatus(status) if status else None)


@dataclass(frozen=True)
class ImportProblem:
    """A CSV row that was skipped, and why."""

    line: int
    message: str


def read_csv(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) from a subscribers CSV (columns email,name,topics)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SubscriberError(str(path), f"cannot read ({exc.strerror})", "check the path") from None
    except UnicodeDecodeError:
        raise SubscriberError(str(path), "not UTF-8 text", "save the CSV as UTF-8") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "email" not in header:
        raise SubscriberError(str(path), "no 'email' column in the header line",
                              "start the file with: email,name,topics")
    reader.fieldnames = header
    for row in reader:
        yield reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}


def import_csv(store: Store, path: Path) -> tuple[dict[str, int], list[ImportProblem]]:
    """Add every good row; report each bad row with its line number and keep going.

    Consent travels with the row: a `status` of paused or unsubscribed (as `export`
    writes it) is kept for a new address, and an address already paused or unsubscribed
    here stays so. Only `digest subscribers add` brings back someone who left.
    """
    counts = {"added": 0, "updated": 0, "kept": 0}
    problems: list[ImportProblem] = []
    for line, row in read_csv(path):
        status = (row.get("status") or ACTIVE).lower()
        if status not in STATUSES:
            problems.append(ImportProblem(line, f"status {row['status']!r} is not one of "
                                          f"{', '.join(STATUSES)}"))
            continue
        others_cell = (row.get(OTHERS_COLUMN) or "").lower()
        if others_cell not in _YES + _NO:
            problems.append(ImportProblem(line, f"{OTHERS_COLUMN} {row[OTHERS_COLUMN]!r} is not "
                                          "yes or no"))
            continue
        # An old CSV without the column leaves the setting as it is (off for new rows).
        list_others = others_cell in _YES if OTHERS_COLUMN in row else None
        try:
            sub, outcome = add(store, _cell(row.get("email")) or "", _cell(row.get("name")) or None,
                               _cell(row.get("topics")) or None, reactivate=False, status=status,
                               list_others=list_others)
        except SubscriberError as exc:
            problems.append(ImportProblem(line, exc.what))
            continue
        if outcome in (PAUSED, UNSUBSCRIBED):
            problems.append(ImportProblem(line, f"{sub.email} is {outcome} here: left as it is "
                                          "(add it with `digest subscribers add` if they asked)"))
        elif outcome.startswith("added "):
            counts["kept"] += 1  # a paused or unsubscribed row, recorded as such
        else:
            counts[outcome if outcome in counts else "updated"] += 1
    return counts, problems


# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _safe_cell(value: str) -> str:
    """Quote a cell a spreadsheet would run as a formula (OWASP: prefix a single quote)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _cell(value: str | None) -> str | None:
    """Undo `_safe_cell`, so an export imports back to the same values."""
    if value and value.startswith("'") and value[1:].startswith(_FORMULA_START):
        return value[1:]
    return value


def export_csv(subscribers: list[Subscriber]) -> str:
    """The subscribers as CSV (email,name,topics,status,list_others), ready for `import`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, "status", OTHERS_COLUMN])
    for sub in subscribers:
        writer.writerow([_safe_cell(cell) for cell in (
            sub.email, sub.name or "", ", ".join(sub.topics), sub.status,
            "yes" if sub.list_others else "no")])
    return out.getvalue()
