"""Deliver digests: every planned delivery not yet sent, each exactly once.

For each delivery: claim it (commit), build the message, send it, record the reply
(commit). A 4xx reply, or a connection lost before the message was complete, gives the
delivery back and puts it at the end of the run: after everyone else, it is tried again
after each of the bounded backoff delays (same Message-ID), then left pending for the next
run. So one bad recipient costs the run seconds, not everyone after it. A 5xx refusal fails
that one delivery; a message sent without a reply is `unknown` and is resent only on
request (`--retry-unknown`). Only a server that cannot be reached at all stops the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from typing import TYPE_CHECKING

from digest.config import Settings
from digest.errors import DeliveryError
from digest.mail import delivery_log as log
from digest.mail.message import (
    PREFERENCES_MARKER,
    UNSUBSCRIBE_MARKER,
    MessageTemplate,
    PreparedBody,
    Recipient,
    build_message,
    message_id,
)
from digest.mail.subscribers import find, normalize_address, parse_topics, topic_pattern
from digest.mail.tokens import preferences_token, unsubscribe_token
from digest.mail.transport import Permanent, Transient, Transport, Unknown
from digest.models import DigestInfo
from digest.report import Problem, Summary
from digest.statuses import ACTIVE, PENDING, DeliveryStatus
from digest.store import Store
from digest.store.deliveries import Delivery, Outcome

if TYPE_CHECKING:  # rendering is imported when a digest is sent: a steady cycle sends none
    from digest.publish.render import PaperView

RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)  # seconds between tries of one message
NOTHING_MATCHES = "no new paper matches the subscriber's topics"


@dataclass(frozen=True)
class _Prepared:
    """A delivery's Message-ID and message, built ahead (None: no paper matches its topics)."""

    msg_id: str
    message: EmailMessage | bytes | None


@dataclass
class _Edition:
    """One digest as it is being sent: its papers, and email bodies cached per topic list."""

    info: DigestInfo
    views: list[PaperView]
    # Keyed by (topics, list the others' titles too).
    bodies: dict[tuple[tuple[str, ...], bool], PreparedBody] = field(default_factory=dict)
    # Serialised once per (topics, others, 8bit, personal links) and filled in per recipient.
    templates: dict[tuple[tuple[str, ...], bool, bool, bool], MessageTemplate] = field(
        default_factory=dict)


class Sender:
    """Sends planned deliveries through one transport; time and sleeping are passed in."""

    def __init__(self, store: Store, settings: Settings, transport: Transport, *,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 sleep: Callable[[float], None] = time.sleep,
                 delays: Sequence[float] = RETRY_DELAYS,
                 progress: Callable[[int, int], None] | None = None) -> None:
        self.store = store
        self.settings = settings
        self.transport = transport
        self.now = now
        self.sleep = sleep
        self.delays = tuple(delays)
        self.progress = progress or (lambda done, total: None)
        self.runner = log.runner_id()
        self.editions: dict[str, _Edition] = {}
        self._sent: Outcome | None = None  # recorded with the next claim, or at the end

    # -- the run ---------------------------------------------------------------------------

    def run(self, dry_run: bool = False, retry_unknown: bool = False) -> Summary:
        """Deliver every planned delivery not yet sent (and `unknown` ones on request)."""
        summary = Summary()
        summary.unknown = log.mark_abandoned(self.store, self.now(), dry_run=dry_run)
        statuses = (log.PENDING, log.UNKNOWN) if retry_unknown else (log.PENDING,)
        if retry_unknown:
            summary.unknown = 0
        ready = []
        with self.store.read() as tx:
            waiting_digests = tx.deliveries.digests_with(statuses)
        for found in waiting_digests:
            if found.held_reason:
                summary.held.append((found.name, found.held_reason))
            else:
                ready.append((found.digest_id, found.name, found.count))
        total, done = sum(c for _, _, c in ready), 0
        later: list[_Retry] = []
        try:
            for digest_id, name, _ in ready:
                edition = self._edition(name)
                waiting = self._waiting(digest_id, statuses)
                if dry_run:
                    for delivery in waiting:
                        self._plan(edition, delivery, summary)
                        done += 1
                    continue
                for delivery in waiting:
                    retry = self._deliver(edition, delivery, self._prepare(edition, delivery),
                                          summary, last_try=not self.delays)
                    later += [retry] if retry else []
                    done += 1
                    self.progress(done, total)
            for round_, delay in enumerate(self.delays, 1):
                if not later:
                    break
                self.sleep(delay)
                last = round_ == len(self.delays)
                later = [again for again in (
                    self._deliver(r.edition, r.delivery, r.prepared, summary, last_try=last)
                    for r in later) if again]
        except _StopRun as stop:
            summary.stopped = str(stop)
        finally:
            self._record_sent()
            self.transport.close()
        return summary

    def _waiting(self, digest_id: int, statuses: tuple[DeliveryStatus, ...],
                 batch: int = 500) -> Iterator[Delivery]:
        """The digest's deliveries in `statuses`, by subscriber id, read in batches (each
        its own read: the claims in between commit)."""
        after = 0
        while True:
            with self.store.read() as tx:
                rows = tx.deliveries.waiting(digest_id, statuses, after, batch)
            if not rows:
                return
            yield from rows
            after = rows[-1].subscriber_id

    def _record_sent(self) -> None:
        if self._sent is not None:
            with self.store.transaction() as tx:
                tx.deliveries.finish(self._sent, self.runner, self.now())
            self._sent = None

    def _finish(self, delivery: Delivery, status: DeliveryStatus, reply: str) -> None:
        with self.store.transaction() as tx:
            tx.deliveries.finish(Outcome(delivery, status, reply), self.runner, self.now())

    def _prepare(self, edition: _Edition, delivery: Delivery) -> _Prepared:
        """The delivery's Message-ID and message (no message when no paper matches)."""
        msg_id = delivery.message_id or message_id(edition.info.name, delivery.subscriber_id,
                                                   delivery.email, self.settings.email.domain)
        if not self._selection(edition, delivery):
            return _Prepared(msg_id, None)
        return _Prepared(msg_id, self._message(edition, delivery, msg_id))

    def _plan(self, edition: _Edition, delivery: Delivery, summary: Summary) -> None:
        sends = delivery.subscriber_status == "active" and bool(self._selection(edition, delivery))
        name = edition.info.name
        if not summary.planned or summary.planned[-1][0] != name:
            summary.planned.append((name, 0, 0))
        digest, send, skip = summary.planned[-1]
        summary.planned[-1] = (digest, send + sends, skip + (not sends))

    def _deliver(self, edition: _Edition, delivery: Delivery, prepared: _Prepared,
                 summary: Summary, last_try: bool) -> _Retry | None:
        """Claim, send and record one delivery; what to try again at the end of the run."""
        message = prepared.message
        # One commit per message: the previous message's outcome, this claim, and what the
        # claim decides without sending (skipped: inactive, or nothing matches) go together,
        # still before this message goes out.
        with self.store.transaction() as tx:
            if self._sent is not None:
                tx.deliveries.finish(self._sent, self.runner, self.now())
            claimed = tx.deliveries.claim(delivery, self.runner, prepared.msg_id, self.now())
            skipped = (tx.deliveries.skip_inactive(delivery, self.now()) if not claimed
                       else message is None)
            if claimed and message is None:
                tx.deliveries.finish(Outcome(delivery, log.SKIPPED, NOTHING_MATCHES),
                                     self.runner, self.now())
        self._sent = None
        summary.skipped += skipped
        if not claimed or message is None:
            return None  # another run has it, it is no longer waiting, or it was skipped
        sender = self.settings.email.from_address
        label = f"{edition.info.name}/{delivery.subscriber_id:06d}-{delivery.email}"
        problem = None
        try:
            reply = self.transport.send(message, sender, delivery.email, label)
        except Transient as exc:
            with self.store.transaction() as tx:
                tx.deliveries.release(delivery, self.runner, str(exc))
            if exc.unreachable:
                summary.deferred += 1
                summary.problems.append(Problem("deferred", edition.info.name, delivery.email,
                                                str(exc)))
                raise _StopRun(f"the mail server is unreachable: {exc}") from None
            if not last_try:  # nothing was delivered: try again after everyone else
                return _Retry(edition, replace(delivery, status=log.PENDING), prepared)
            summary.deferred += 1
            problem = Problem("deferred", edition.info.name, delivery.email, str(exc))
        except Permanent as exc:
            self._finish(delivery, log.FAILED, str(exc))
            summary.failed += 1
            problem = Problem("failed", edition.info.name, delivery.email, str(exc))
        except Unknown as exc:
            self._finish(delivery, log.UNKNOWN, str(exc))
            summary.unknown += 1
            problem = Problem("unknown", edition.info.name, delivery.email, str(exc))
        else:
            # Recorded in the next claim's transaction (or at the end of the run): the
            # window between the server's 250 and the commit stays one message wide.
            self._sent = Outcome(delivery, log.SENT, reply)
            summary.sent += 1
        if problem is not None:
            summary.problems.append(problem)
        return None

    def send_one(self, address: str, digest: str) -> str:
        """Send one digest to one address on request (a preview, a welcome copy), outside the
        log. A subscriber's topics and unsubscribe link apply when the address is on file."""
        email = normalize_address(address)
        known = find(self.store, email)
        edition = self._edition(digest)
        delivery = Delivery(digest_id=0, digest=digest, subscriber_id=known.id if known else 0,
                            email=email, name=known.name if known else None,
                            topics=", ".join(known.topics) if known else "",
                            subscriber_status=ACTIVE, status=PENDING, message_id=None,  # never claimed
                            list_others=known.list_others if known else False)
        if not self._selection(edition, delivery):
            raise DeliveryError(email, f"no paper of digest {digest} matches the subscriber's "
                                "topics", "send another digest, or change the topics")
        message = self._message(edition, delivery, make_msgid(domain=self.settings.email.domain),
                                personal=known is not None)
        try:
            return self.transport.send(message, self.settings.email.from_address, email,
                                       f"{digest}/preview-{email}")
        except (Transient, Permanent, Unknown) as exc:
            raise DeliveryError(email, f"not sent: {exc}", "check the mail server settings") from None
        finally:
            self.transport.close()

    # -- content --------------------------------------------------------------------------

    def _edition(self, name: str) -> _Edition:
        if name not in self.editions:
            info = self.store.digest(name)
            if info is None:
                raise DeliveryError(name, "no such digest", "see `digest history` for digest names")
            from digest.publish.render import paper_view

            views = [paper_view(p) for p in self.store.digest_papers(name)]
            self.editions[name] = _Edition(info=info, views=views)
        return self.editions[name]

    def _selection(self, edition: _Edition, delivery: Delivery) -> list[PaperView]:
        pattern = topic_pattern(parse_topics(delivery.topics))
        if pattern is None:
            return edition.views
        return [v for v in edition.views if pattern.search(v.title) or pattern.search(v.abstract)]

    def _web_links(self) -> bool:
        """Links to the web app (unsubscribe, preferences) need its public URL and a secret."""
        return bool(self.settings.site.base_url and self.settings.email.secret)

    def _body(self, edition: _Edition, topics: tuple[str, ...],
              list_others: bool = False) -> PreparedBody:
        """The email body for one topic list (and others setting), rendered once and shared
        by its subscribers. The others' titles are listed only for a subscriber with topics."""
        pattern = topic_pattern(topics)
        key = (topics, list_others and pattern is not None)
        if key not in edition.bodies:
            from digest.publish.render import render_email

            views = edition.views if pattern is None else [
                v for v in edition.views if pattern.search(v.title) or pattern.search(v.abstract)]
            shown = {v.key for v in views}
            others = [v for v in edition.views if v.key not in shown] if key[1] else []
            # Numbered as shown; each card's "more" and the web link still find the paper.
            body = render_email(self.settings.site, edition.info, views,
                                self.settings.templates, topics=topics, highlight=pattern,
                                unsubscribe_url=UNSUBSCRIBE_MARKER,
                                preferences_url=PREFERENCES_MARKER if self._web_links() else None,
                                others=others)
            edition.bodies[key] = PreparedBody.of(body, len(views))
        return edition.bodies[key]

    def _message(self, edition: _Edition, delivery: Delivery, msg_id: str,
                 personal: bool = True) -> EmailMessage | bytes:
        """The message for one delivery: as bytes from the body's template when it can be,
        else built in full (the same bytes either way)."""
        email = self.settings.email
        topics = parse_topics(delivery.topics)
        body = self._body(edition, topics, delivery.list_others)
        unsubscribe = preferences = None
        if personal and self._web_links() and email.secret:
            token = unsubscribe_token(email.secret, delivery.subscriber_id)
            unsubscribe = self.settings.site.link(f"unsubscribe?token={token}")
            token = preferences_token(email.secret, delivery.subscriber_id)
            preferences = self.settings.site.link(f"preferences?token={token}")
        recipient = Recipient(delivery.email, delivery.name, unsubscribe, preferences)
        now, eight_bit = self.now(), self.transport.eight_bit()
        key = (topics, delivery.list_others, eight_bit, unsubscribe is not None)
        if key not in edition.templates:
            edition.templates[key] = MessageTemplate(
                site=self.settings.site, info=edition.info, body=body, from_name=email.from_name,
                from_address=email.from_address, eight_bit=eight_bit, personal=key[3])
        fast = edition.templates[key].render(recipient, msg_id, now)
        if fast is not None:
            return fast
        return build_message(
            site=self.settings.site, info=edition.info, body=body, recipient=recipient,
            from_name=email.from_name, from_address=email.from_address, msg_id=msg_id,
            now=now, eight_bit=eight_bit)


@dataclass(frozen=True)
class _Retry:
    """A delivery given back after a transient failure, to try again at the end of the run."""

    edition: _Edition
    delivery: Delivery
    prepared: _Prepared


class _StopRun(Exception):
    """The run cannot go on (the server is unreachable); what is left stays pending."""

