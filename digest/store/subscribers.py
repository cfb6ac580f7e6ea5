"""The subscribers area: one row per inbox (keyed by the case-folded address), its topics and
its status. Addresses arrive here already checked (`mail.subscribers.normalize_address`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, insert, select, update

from digest.statuses import ACTIVE, UNSUBSCRIBED, SubscriberStatus
from digest.store import schema as t
from digest.store.times import naive_utc
from digest.topics import parse_topics


@dataclass(frozen=True)
class Subscriber:
    """One subscriber as stored."""

    id: int
    email: str
    name: str | None
    topics: tuple[str, ...]
    status: SubscriberStatus
    updated_at: datetime | None = None
    # With topics: after the matched papers, also list the other new papers' titles.
    list_others: bool = False


class Subscribers:
    """Subscribers within one transaction."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def find(self, address: str) -> Subscriber | None:
        """The subscriber with this (normalised) address, in any case."""
        return self._one(_by_address(address))

    def by_id(self, subscriber_id: int | None) -> Subscriber | None:
        """The subscriber with this id, if any."""
        return self._one(select(t.subscribers).where(t.subscribers.c.id == subscriber_id))

    def add(self, address: str, name: str | None, topics: str | None, now: datetime, *,
            reactivate: bool, status: SubscriberStatus,
            list_others: bool | None) -> tuple[Subscriber, str]:
        """Add or update a subscriber (see `mail.subscribers.add`); returns it and what happened."""
        topic_text = ", ".join(parse_topics(topics))
        stamp = naive_utc(now)
        row = self.conn.execute(_by_address(address)).first()
        if row is None:
            self.conn.execute(insert(t.subscribers).values(
                email=address, email_key=address.casefold(), name=name, topics=topic_text,
                status=status, created_at=stamp, updated_at=stamp,
                list_others=bool(list_others)))
            outcome = "added" if status == ACTIVE else f"added {status}"
        elif row.status != ACTIVE and not reactivate:
            return _subscriber(row), row.status
        else:
            outcome = "re-subscribed" if row.status == UNSUBSCRIBED else "updated"
            self.conn.execute(update(t.subscribers).where(t.subscribers.c.id == row.id).values(
                email=address, name=name if name is not None else row.name,
                topics=topic_text if topics is not None else row.topics,
                list_others=row.list_others if list_others is None else list_others,
                status=ACTIVE, updated_at=stamp))
        return _subscriber(self.conn.execute(_by_address(address)).one()), outcome

    def set_status(self, address: str, status: SubscriberStatus,
                   now: datetime) -> Subscriber | None:
        """Change the status of the subscriber with this address; None when there is none."""
        done = self.conn.execute(update(t.subscribers)
                                 .where(t.subscribers.c.email_key == address.casefold())
                                 .values(status=status, updated_at=naive_utc(now)))
        return self._one(_by_address(address)) if done.rowcount else None

    def set_status_by_id(self, subscriber_id: int, status: SubscriberStatus,
                         now: datetime) -> bool:
        """Change a subscriber's status by id; False when there is none."""
        done = self.conn.execute(update(t.subscribers).where(t.subscribers.c.id == subscriber_id)
                                 .values(status=status, updated_at=naive_utc(now)))
        return done.rowcount == 1

    def set_topics(self, subscriber_id: int, topics: str, now: datetime,
                   list_others: bool | None = None) -> Subscriber | None:
        """Change a subscriber's topics (and, when given, `list_others`), never their status."""
        values: dict[str, object] = {"topics": ", ".join(parse_topics(topics)),
                                     "updated_at": naive_utc(now)}
        if list_others is not None:
            values["list_others"] = list_others
        self.conn.execute(update(t.subscribers).where(t.subscribers.c.id == subscriber_id)
                          .values(**values))
        return self.by_id(subscriber_id)

    def all(self, status: SubscriberStatus | None = None) -> list[Subscriber]:
        """Every subscriber (or those with `status`), oldest first."""
        query = select(t.subscribers).order_by(t.subscribers.c.id)
        if status:
            query = query.where(t.subscribers.c.status == status)
        return [_subscriber(row) for row in self.conn.execute(query)]

    def _one(self, query: Select[Any]) -> Subscriber | None:
        row = self.conn.execute(query).first()
        return _subscriber(row) if row else None


def _by_address(address: str) -> Select[Any]:
    return select(t.subscribers).where(t.subscribers.c.email_key == address.casefold())


def _subscriber(row: Any) -> Subscriber:
    return Subscriber(id=row.id, email=row.email, name=row.name,
                      topics=parse_topics(row.topics), status=SubscriberStatus(row.status),
                      updated_at=row.updated_at, list_others=bool(row.list_others))
