"""The deliveries area: one row per (digest, subscriber), claimed before a send and closed
right after it (the claim protocol itself is `mail.delivery_log`).

Claims are atomic (`UPDATE ... WHERE status = 'pending'`, then the row count decides), so
two `digest send` runs at once never send the same delivery twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, exists, func, select, update

from digest.statuses import (
    DEFERRED,
    NEEDS_ATTENTION,
    PENDING,
    SENDING,
    SKIPPED,
    UNKNOWN,
    DeliveryStatus,
    SubscriberStatus,
)
from digest.store import schema as t
from digest.store.times import aware, naive_utc


@dataclass(frozen=True)
class Delivery:
    """A planned delivery with what sending it needs to know about the subscriber."""

    digest_id: int
    digest: str
    subscriber_id: int
    email: str
    name: str | None
    topics: str
    subscriber_status: SubscriberStatus
    status: DeliveryStatus | str  # a preview (`send --to`) is outside the log: "preview"
    message_id: str | None
    list_others: bool = False  # with topics: list the other new papers' titles too


@dataclass(frozen=True)
class Outcome:
    """A claimed delivery's result, waiting to be recorded."""

    delivery: Delivery
    status: DeliveryStatus
    reply: str


@dataclass(frozen=True)
class Claim:
    """A delivery being sent: by whom (`host:pid`) and since when."""

    digest_id: int
    subscriber_id: int
    claimed_by: str | None
    claimed_at: datetime


@dataclass(frozen=True)
class Waiting:
    """A digest with deliveries in the statuses asked for, and how many."""

    digest_id: int
    name: str
    held_reason: str | None
    count: int


@dataclass(frozen=True)
class Listed:
    """One delivery as `digest deliveries` shows it."""

    digest: str
    email: str
    status: DeliveryStatus
    reply: str | None
    attempts: int
    when: datetime | None


def _keys(d: Delivery) -> dict[str, object]:
    return {"b_digest": d.digest_id, "b_subscriber": d.subscriber_id}


_THIS_ROW = and_(t.deliveries.c.digest_id == bindparam("b_digest"),
                 t.deliveries.c.subscriber_id == bindparam("b_subscriber"))
_MINE = and_(_THIS_ROW, t.deliveries.c.status == SENDING,
             t.deliveries.c.claimed_by == bindparam("b_runner"))
# Built once: these run twice per message, and building a statement costs more than
# executing it.
_CLAIM = update(t.deliveries).where(
    _THIS_ROW, t.deliveries.c.status == bindparam("b_from"),
    exists().where(t.subscribers.c.id == bindparam("b_subscriber"),
                   t.subscribers.c.status == "active"),
).values(status=SENDING, claimed_by=bindparam("b_runner"), claimed_at=bindparam("b_at"),
         message_id=bindparam("b_message_id"), attempts=t.deliveries.c.attempts + 1)
_FINISH = update(t.deliveries).where(_MINE).values(
    status=bindparam("b_status"), reply=bindparam("b_reply"), finished_at=bindparam("b_at"))
_RELEASE = update(t.deliveries).where(_MINE).values(
    status=PENDING, reply=bindparam("b_reply"), claimed_by=None, claimed_at=None)
_SKIP_INACTIVE = update(t.deliveries).where(
    _THIS_ROW, t.deliveries.c.status == bindparam("b_from"),
    exists().where(t.subscribers.c.id == bindparam("b_subscriber"),
                   t.subscribers.c.status != "active"),
).values(status=SKIPPED, reply="subscriber not active", finished_at=bindparam("b_at"))


class Deliveries:
    """The delivery log within one transaction."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def claims(self) -> list[Claim]:
        """Every delivery being sent now (or by a run that died)."""
        rows = self.conn.execute(select(t.deliveries.c.digest_id, t.deliveries.c.subscriber_id,
                                        t.deliveries.c.claimed_by, t.deliveries.c.claimed_at)
                                 .where(t.deliveries.c.status == SENDING))
        return [Claim(r.digest_id, r.subscriber_id, r.claimed_by, aware(r.claimed_at))
                for r in rows]

    def mark_unknown(self, claim: Claim, reply: str) -> None:
        """Turn a claim into `unknown`, if it is still the same claim."""
        self.conn.execute(update(t.deliveries).where(
            t.deliveries.c.digest_id == claim.digest_id,
            t.deliveries.c.subscriber_id == claim.subscriber_id,
            t.deliveries.c.status == SENDING,
            t.deliveries.c.claimed_by == claim.claimed_by,
        ).values(status=UNKNOWN, reply=reply))

    def digests_with(self, statuses: tuple[str, ...]) -> list[Waiting]:
        """Digests with deliveries in `statuses`, oldest first."""
        query = (select(t.digests.c.id, t.digests.c.name, t.digests.c.held_reason, func.count())
                 .join(t.deliveries, t.deliveries.c.digest_id == t.digests.c.id)
                 .where(t.deliveries.c.status.in_(statuses))
                 .group_by(t.digests.c.id, t.digests.c.name, t.digests.c.held_reason)
                 .order_by(t.digests.c.id))
        return [Waiting(r[0], r[1], r[2], r[3]) for r in self.conn.execute(query)]

    def waiting(self, digest_id: int, statuses: tuple[str, ...], after: int,
                limit: int) -> list[Delivery]:
        """Up to `limit` of the digest's deliveries in `statuses`, by subscriber id after `after`."""
        query = (select(t.deliveries, t.digests.c.name.label("digest"), t.subscribers.c.email,
                        t.subscribers.c.name, t.subscribers.c.topics, t.subscribers.c.list_others,
                        t.subscribers.c.status.label("subscriber_status"))
                 .join(t.digests, t.digests.c.id == t.deliveries.c.digest_id)
                 .join(t.subscribers, t.subscribers.c.id == t.deliveries.c.subscriber_id)
                 .where(t.deliveries.c.digest_id == digest_id,
                        t.deliveries.c.status.in_(statuses),
                        t.deliveries.c.subscriber_id > after)
                 .order_by(t.deliveries.c.subscriber_id).limit(limit))
        return [Delivery(digest_id=row.digest_id, digest=row.digest,
                         subscriber_id=row.subscriber_id, email=row.email, name=row.name,
                         topics=row.topics,
                         subscriber_status=SubscriberStatus(row.subscriber_status),
                         status=DeliveryStatus(row.status), message_id=row.message_id,
                         list_others=bool(row.list_others))
                for row in self.conn.execute(query)]

    def claim(self, d: Delivery, runner: str, message_id: str, now: datetime) -> bool:
        """Take the delivery if it is still waiting and its subscriber is active."""
        done = self.conn.execute(_CLAIM, {**_keys(d), "b_from": d.status, "b_runner": runner,
                                          "b_at": naive_utc(now), "b_message_id": message_id})
        return done.rowcount == 1

    def finish(self, outcome: Outcome, runner: str, now: datetime) -> None:
        """Record the outcome of a delivery this runner claimed."""
        self.conn.execute(_FINISH, {**_keys(outcome.delivery), "b_runner": runner,
                                    "b_status": outcome.status, "b_reply": outcome.reply[:1000],
                                    "b_at": naive_utc(now)})

    def release(self, d: Delivery, runner: str, reply: str) -> None:
        """Give a claimed delivery back (nothing was delivered): the next run tries again."""
        self.conn.execute(_RELEASE, {**_keys(d), "b_runner": runner, "b_reply": reply[:1000]})

    def skip_inactive(self, d: Delivery, now: datetime) -> bool:
        """Mark a waiting delivery skipped when its subscriber is no longer active."""
        done = self.conn.execute(_SKIP_INACTIVE, {**_keys(d), "b_from": d.status,
                                                  "b_at": naive_utc(now)})
        return done.rowcount == 1

    def status_counts(self) -> dict[str, int]:
        """How many deliveries are in each status (for reports and tests)."""
        return {status: count for status, count in self.conn.execute(
            select(t.deliveries.c.status, func.count()).group_by(t.deliveries.c.status))}

    def listing(self, statuses: tuple[str, ...] = NEEDS_ATTENTION) -> list[Listed]:
        """Deliveries in `statuses` (`deferred`: pending, tried and given back), oldest digest
        first."""
        stored = ({s for s in statuses if s != DEFERRED}
                  | ({PENDING} if DEFERRED in statuses else set()))
        query = (select(t.digests.c.name, t.subscribers.c.email, t.deliveries.c.status,
                        t.deliveries.c.reply, t.deliveries.c.attempts, t.deliveries.c.finished_at,
                        t.deliveries.c.claimed_at)
                 .join(t.digests, t.digests.c.id == t.deliveries.c.digest_id)
                 .join(t.subscribers, t.subscribers.c.id == t.deliveries.c.subscriber_id)
                 .where(t.deliveries.c.status.in_(sorted(stored)))
                 .order_by(t.digests.c.id, t.deliveries.c.subscriber_id))
        found = []
        for row in self.conn.execute(query):
            status = DEFERRED if row.status == PENDING and row.reply else DeliveryStatus(row.status)
            when = row.finished_at or row.claimed_at
            if status in statuses:
                found.append(Listed(row.name, row.email, status, row.reply, row.attempts,
                                    aware(when) if when else None))
        return found
