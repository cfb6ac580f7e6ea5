"""Subscribers: who gets the digest, and which papers each of them wants.

Addresses are checked and normalised by email-validator (syntax only: no DNS lookups,
so it works offline and does not leak addresses). One row per inbox: addresses differing
only in case are the same subscriber. A subscriber is active, paused, or unsubscribed;
an unsubscribed address gets nothing again unless it is explicitly added again.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import insert, select, update

from digest import schema as t
from digest.errors import SubscriberError
from digest.store import Store, naive_utc
from digest.text import one_line

ACTIVE, PAUSED, UNSUBSCRIBED = "active", "paused", "unsubscribed"
CSV_COLUMNS = ("email", "name", "topics")


@dataclass(frozen=True)
class Subscriber:
    """One subscriber as stored."""

    id: int
    email: str
    name: str | None
    topics: tuple[str, ...]
    status: str


def normalize_address(raw: str) -> str:
    """Check an address's syntax and return its normalised form (raises SubscriberError)."""
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise SubscriberError(raw, f"not a valid email address ({exc})",
                              "check the spelling, e.g. ada@example.org") from None


def parse_topics(text: str | None) -> tuple[str, ...]:
    """Split `"reasoning, diffusion models"` into distinct phrases (empty: every paper)."""
    if not text:
        return ()
    phrases = (" ".join(one_line(p).split()) for p in re.split(r"[,;\n]", text))
    return tuple(dict.fromkeys(p for p in phrases if p))


def topic_pattern(topics: tuple[str, ...]) -> re.Pattern[str] | None:
    """One case-insensitive regex matching any topic as whole words; None for no topics."""
    if not topics:
        return None
    alternatives = "|".join(r"\s+".join(map(re.escape, t.split())) for t in topics)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def _row(row: Any) -> Subscriber:
    return Subscriber(id=row.id, email=row.email, name=row.name,
                      topics=parse_topics(row.topics), status=row.status)


def find(store: Store, email: str) -> Subscriber | None:
    """Return the subscriber with this address (any case), if any."""
    key = normalize_address(email).casefold()
    with store.engine.connect() as conn:
        row = conn.execute(select(t.subscribers).where(t.subscribers.c.email_key == key)).first()
    return _row(row) if row else None


def add(store: Store, email: str, name: str | None = None, topics: str | None = None,
        now: datetime | None = None, *, reactivate: bool = True) -> tuple[Subscriber, str]:
    """Add or update a subscriber; returns it and what happened (added, updated, ...).

    `reactivate=False` (imports) leaves an unsubscribed address unsubscribed.
    """
    address = normalize_address(email)
    clean_name = one_line(name)[:200] if name else None
    topic_text = ", ".join(parse_topics(topics))
    stamp = naive_utc(now or datetime.now(UTC))
    with store.engine.begin() as conn:
        row = conn.execute(select(t.subscribers)
                           .where(t.subscribers.c.email_key == address.casefold())).first()
        if row is None:
            conn.execute(insert(t.subscribers).values(
                email=address, email_key=address.casefold(), name=clean_name, topics=topic_text,
                status=ACTIVE, created_at=stamp, updated_at=stamp))
            outcome = "added"
        elif row.status == UNSUBSCRIBED and not reactivate:
            return _row(row), "unsubscribed"
        else:
            outcome = "re-subscribed" if row.status == UNSUBSCRIBED else "updated"
            conn.execute(update(t.subscribers).where(t.subscribers.c.id == row.id).values(
                email=address, name=clean_name if name is not None else row.name,
                topics=topic_text if topics is not None else row.topics,
                status=ACTIVE, updated_at=stamp))
        row = conn.execute(select(t.subscribers)
                           .where(t.subscribers.c.email_key == address.casefold())).one()
    return _row(row), outcome


def by_id(store: Store, subscriber_id: int | None) -> Subscriber | None:
    """The subscriber with this id, if any."""
    with store.engine.connect() as conn:
        row = conn.execute(select(t.subscribers).where(t.subscribers.c.id == subscriber_id)).first()
    return _row(row) if row else None


def set_status(store: Store, email: str, status: str, now: datetime | None = None) -> Subscriber:
    """Pause, resume (active) or unsubscribe an existing subscriber."""
    address = normalize_address(email)
    with store.engine.begin() as conn:
        done = conn.execute(update(t.subscribers)
                            .where(t.subscribers.c.email_key == address.casefold())
                            .values(status=status, updated_at=naive_utc(now or datetime.now(UTC))))
        if done.rowcount == 0:
            raise SubscriberError(email, "no such subscriber",
                                  "see `digest subscribers list` for the addresses on file")
        row = conn.execute(select(t.subscribers)
                           .where(t.subscribers.c.email_key == address.casefold())).one()
    return _row(row)


def set_status_by_id(store: Store, subscriber_id: int, status: str) -> bool:
    """Change a subscriber's status by id (unsubscribe links); False when there is none."""
    with store.engine.begin() as conn:
        done = conn.execute(update(t.subscribers).where(t.subscribers.c.id == subscriber_id)
                            .values(status=status, updated_at=naive_utc(datetime.now(UTC))))
    return done.rowcount == 1


def all_subscribers(store: Store, status: str | None = None) -> list[Subscriber]:
    """Every subscriber (or those with `status`), oldest first."""
    query = select(t.subscribers).order_by(t.subscribers.c.id)
    if status:
        query = query.where(t.subscribers.c.status == status)
    with store.engine.connect() as conn:
        return [_row(row) for row in conn.execute(query)]


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
    """Add every good row; report each bad row with its line number and keep going."""
    counts = {"added": 0, "updated": 0, "unsubscribed": 0}
    problems: list[ImportProblem] = []
    for line, row in read_csv(path):
        try:
            _, outcome = add(store, row.get("email", ""), row.get("name") or None,
                             row.get("topics") or None, reactivate=False)
        except SubscriberError as exc:
            problems.append(ImportProblem(line, exc.what))
            continue
        if outcome == "unsubscribed":
            problems.append(ImportProblem(line, f"{row['email']} unsubscribed earlier: left out "
                                          "(add it with `digest subscribers add` if they asked)"))
        counts[outcome if outcome in counts else "updated"] += 1
    return counts, problems


def export_csv(subscribers: list[Subscriber]) -> str:
    """The subscribers as CSV (email,name,topics,status), ready for `import`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, "status"])
    for sub in subscribers:
        writer.writerow([sub.email, sub.name or "", ", ".join(sub.topics), sub.status])
    return out.getvalue()
