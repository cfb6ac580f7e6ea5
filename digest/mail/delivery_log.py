"""The delivery log in the store: one row per (digest, subscriber), claimed before a send
and closed right after it, so a crash can double-send at most the one message in flight.

Claims are atomic (`UPDATE ... WHERE status = 'pending'`, then the row count decides), so
two `digest send` runs at once never send the same delivery twice.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, bindparam, exists, func, select, update

# Re-exported: callers name them delivery_log.SENT, ...
from digest.statuses import DEFERRED as DEFERRED
from digest.statuses import FAILED as FAILED
from digest.statuses import LISTED_STATUSES as LISTED_STATUSES
from digest.statuses import NEEDS_ATTENTION as NEEDS_ATTENTION
from digest.statuses import PENDING as PENDING
from digest.statuses import SENDING as SENDING
from digest.statuses import SENT as SENT
from digest.statuses import SKIPPED as SKIPPED
from digest.statuses import UNKNOWN as UNKNOWN
from digest.store import Store, naive_utc
from digest.store import schema as t

# A claim older than this belongs to a run that died (a send takes seconds, retries < 1 min).
STALE_CLAIM = timedelta(minutes=15)


def runner_id() -> str:
    """Who is claiming: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Delivery:
    """A planned delivery with what sending it needs to know about the subscriber."""

    digest_id: int
    digest: str
    subscriber_id: int
    email: str
    name: str | None
    topics: str
    subscriber_status: str
    status: str
    message_id: str | None
    list_others: bool = False  # with topics: list the other new papers' titles too


def _alive(claimed_by: str | None) -> bool:
    """False when the claiming process is known to be gone (same host, pid not running)."""
    host, _, pid = (claimed_by or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine: only the age of the claim can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_abandoned(store: Store, now: datetime, dry_run: bool = False) -> int:
    """Turn `sending` rows of dead runs into `unknown`; return how many there are."""
    stale_before = naive_utc(now - STALE_CLAIM)
    with store.engine.begin() as conn:
        rows = conn.execute(select(t.deliveries.c.digest_id, t.deliveries.c.subscriber_id,
                                   t.deliveries.c.claimed_by, t.deliveries.c.claimed_at)
                            .where(t.deliveries.c.status == SENDING)).all()
        dead = [r for r in rows if not _alive(r.claimed_by) or r.claimed_at < stale_before]
        if not dry_run:
            for row in dead:
                conn.execute(update(t.deliveries).where(
                    t.deliveries.c.digest_id == row.digest_id,
                    t.deliveries.c.subscriber_id == row.subscriber_id,
                    t.deliveries.c.status == SENDING,
                    t.deliveries.c.claimed_by == row.claimed_by,
                ).values(status=UNKNOWN, reply="the sending run stopped before recording the "
                         "server's answer; resend with digest send --retry-unknown"))
    return len(dead)


def digests_with(store: Store, statuses: tuple[str, ...]) -> list[tuple[int, str, str | None, int]]:
    """(digest id, name, held reason, count) of digests with deliveries in `statuses`."""
    query = (select(t.digests.c.id, t.digests.c.name, t.digests.c.held_reason, func.count())
             .join(t.deliveries, t.deliveries.c.digest_id == t.digests.c.id)
             .where(t.deliveries.c.status.in_(statuses))
             .group_by(t.digests.c.id, t.digests.c.name, t.digests.c.held_reason)
             .order_by(t.digests.c.id))
    with store.engine.connect() as conn:
        return [(r[0], r[1], r[2], r[3]) for r in conn.execute(query)]


def deliveries(store: Store, digest_id: int, statuses: tuple[str, ...],
               batch: int = 500) -> Iterator[Delivery]:
    """The digest's deliveries in `statuses`, by subscriber id, read in batches."""
    after = 0
    while True:
        query = (select(t.deliveries, t.digests.c.name.label("digest"), t.subscribers.c.email,
                        t.subscribers.c.name, t.subscribers.c.topics, t.subscribers.c.list_others,
                        t.subscribers.c.status.label("subscriber_status"))
                 .join(t.digests, t.digests.c.id == t.deliveries.c.digest_id)
                 .join(t.subscribers, t.subscribers.c.id == t.deliveries.c.subscriber_id)
                 .where(t.deliveries.c.digest_id == digest_id,
                        t.deliveries.c.status.in_(statuses),
                        t.deliveries.c.subscriber_id > after)
                 .order_by(t.deliveries.c.subscriber_id).limit(batch))
        with store.engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return
        for row in rows:
            yield Delivery(digest_id=row.digest_id, digest=row.digest,
                           subscriber_id=row.subscriber_id, email=row.email, name=row.name,
                           topics=row.topics, subscriber_status=row.subscriber_status,
                           status=row.status, message_id=row.message_id,
                           list_others=bool(row.list_others))
        after = rows[-1].subscriber_id


def _row(d: Delivery) -> dict[str, object]:
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


@dataclass(frozen=True)
class Outcome:
    """A claimed delivery's result, waiting to be recorded."""

    delivery: Delivery
    status: str
    reply: str


def claim(store: Store, d: Delivery, runner: str, message_id: str, now: datetime,
          record: Outcome | None = None) -> bool:
    """Take the delivery for this run if it is still waiting and its subscriber is active.

    `record`, the previous message's outcome, is committed in the same transaction: one
    commit per message instead of two, and still before the next message goes out.
    """
    with store.engine.begin() as conn:
        if record is not None:
            _finish(conn, record, runner, now)
        done = conn.execute(_CLAIM, {**_row(d), "b_from": d.status, "b_runner": runner,
                                     "b_at": naive_utc(now), "b_message_id": message_id})
    return done.rowcount == 1


def _finish(conn: Connection, outcome: Outcome, runner: str, now: datetime) -> None:
    conn.execute(_FINISH, {**_row(outcome.delivery), "b_runner": runner,
                           "b_status": outcome.status, "b_reply": outcome.reply[:1000],
                           "b_at": naive_utc(now)})


def finish(store: Store, outcome: Outcome, runner: str, now: datetime) -> None:
    """Record the outcome of a claimed delivery (sent, failed, unknown, skipped)."""
    with store.engine.begin() as conn:
        _finish(conn, outcome, runner, now)


def release(store: Store, d: Delivery, runner: str, reply: str) -> None:
    """Give a claimed delivery back (nothing was delivered): the next run tries again."""
    with store.engine.begin() as conn:
        conn.execute(_RELEASE, {**_row(d), "b_runner": runner, "b_reply": reply[:1000]})


def skip_inactive(store: Store, d: Delivery, now: datetime) -> bool:
    """Mark a waiting delivery skipped when its subscriber is no longer active."""
    with store.engine.begin() as conn:
        done = conn.execute(_SKIP_INACTIVE, {**_row(d), "b_from": d.status,
                                             "b_at": naive_utc(now)})
    return done.rowcount == 1


def release_digest(store: Store, name: str) -> bool:
    """Lift the flood guard's hold on a digest; False when no such digest is held."""
    with store.engine.begin() as conn:
        done = conn.execute(update(t.digests).where(
            t.digests.c.name == name, t.digests.c.held_reason.is_not(None)
        ).values(held_reason=None))
    return done.rowcount == 1


def status_counts(store: Store) -> dict[str, int]:
    """How many deliveries are in each status (for reports and tests)."""
    with store.engine.connect() as conn:
        return {status: count for status, count in conn.execute(
            select(t.deliveries.c.status, func.count()).group_by(t.deliveries.c.status))}


@dataclass(frozen=True)
class Listed:
    """One delivery as `digest deliveries` shows it."""

    digest: str
    email: str
    status: str
    reply: str | None
    attempts: int
    when: datetime | None


def listing(store: Store, statuses: tuple[str, ...] = NEEDS_ATTENTION) -> list[Listed]:
    """Deliveries in `statuses` (`deferred`: pending, tried and given back), oldest digest first."""
    stored = {s for s in statuses if s != DEFERRED} | ({PENDING} if DEFERRED in statuses else set())
    query = (select(t.digests.c.name, t.subscribers.c.email, t.deliveries.c.status,
                    t.deliveries.c.reply, t.deliveries.c.attempts, t.deliveries.c.finished_at,
                    t.deliveries.c.claimed_at)
             .join(t.digests, t.digests.c.id == t.deliveries.c.digest_id)
             .join(t.subscribers, t.subscribers.c.id == t.deliveries.c.subscriber_id)
             .where(t.deliveries.c.status.in_(sorted(stored)))
             .order_by(t.digests.c.id, t.deliveries.c.subscriber_id))
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    found = []
    for row in rows:
        status = DEFERRED if row.status == PENDING and row.reply else row.status
        if status in statuses:
            found.append(Listed(row.name, row.email, status, row.reply, row.attempts,
                                row.finished_at or row.claimed_at))
    return found
