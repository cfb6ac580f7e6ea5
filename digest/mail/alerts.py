"""Tell the operator when a source fails: one short email per source per day, at most."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING

from digest.mail.message import POLICY, header_text
from digest.mail.transport import Permanent, Transient, Unknown, make_transport
from digest.store import Store

if TYPE_CHECKING:
    from digest.config import Settings


def alert_operator(store: Store, settings: Settings, source: str, reason: str,
                   now: datetime) -> bool:
    """Email `alerts.email` about a failed source, unless it was told today already.

    Marked as told only once sent: an alert that could not go out is tried again at the
    next cycle, and one goes out each day the failure lasts.
    """
    if not settings.alerts_email:
        return False
    with store.read() as tx:
        if tx.cycles.alerted(source, now.date()):
            return False
    message = EmailMessage(policy=POLICY)
    message["From"] = settings.email.from_address
    message["To"] = settings.alerts_email
    message["Subject"] = header_text(f"paper-digest: source {source} failed")
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=settings.email.domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(f"The source {source!r} failed on {now:%Y-%m-%d %H:%M} UTC:\n\n"
                        f"  {header_text(reason)}\n\nNothing was ingested from it. paper-digest "
                        "tries again at the next cycle; this is the only alert for it today.\n")
    transport = make_transport(settings.email, settings.out_dir / "outbox")
    try:
        transport.send(message, settings.email.from_address, settings.alerts_email,
                       f"alerts/{now:%Y-%m-%d}-{source}")
    except (Transient, Permanent, Unknown):
        return False
    finally:
        transport.close()
    with store.transaction() as tx:
        tx.cycles.record_alert(source, now.date(), reason)
    return True
