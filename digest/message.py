"""Build the email a subscriber gets: a standard-library EmailMessage. Pure: data -> message.

multipart/alternative with the plain text first and the HTML second (clients show the last
part they understand), UTF-8. Two traps are avoided on purpose:
- policy.SMTP folds headers at 78 characters and RFC 2047-encodes a long List-Unsubscribe
  URL, which mail clients then ignore: the policy here folds only past 998.
- CVE-2024-6923: on unpatched Pythons an encoded word such as `=?UTF-8?Q?=0A?=` in an
  inserted value could smuggle a header. Every inserted value is made one line, stripped of
  control characters, and has its encoded-word markers broken up.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from markupsafe import escape

from digest.models import DigestInfo
from digest.render import EmailBody, Site, long_date
from digest.text import one_line

# Fold only where RFC 5322 forces it (998), so URLs in headers stay intact and unencoded.
POLICY = policy.SMTP.clone(max_line_length=998)
POLICY_UTF8 = policy.SMTPUTF8.clone(max_line_length=998)
# Stands in the rendered body for each subscriber's own unsubscribe link.
UNSUBSCRIBE_MARKER = "https://unsubscribe.invalid/paper-digest-subscriber-link"
_ENCODED_WORD = re.compile(r"=\?")


def header_text(value: str) -> str:
    """Make untrusted text safe for a header: one line, no controls, no encoded words."""
    return _ENCODED_WORD.sub("= ?", one_line(value))


@dataclass(frozen=True)
class Recipient:
    """Who a message goes to, and the per-subscriber parts of it."""

    email: str
    name: str | None = None
    unsubscribe_url: str | None = None  # https one-click link (needs a public base URL)


def message_id(digest: str, subscriber_id: int, email: str, domain: str) -> str:
    """The same Message-ID for the same (digest, subscriber), on every try."""
    tag = hashlib.sha256(f"{digest}\0{subscriber_id}\0{email.casefold()}".encode()).hexdigest()[:20]
    return f"<digest.{digest}.{subscriber_id}.{tag}@{domain}>"


def subject(site: Site, info: DigestInfo, count: int) -> str:
    """`Daily Papers, Mar 13: 6 new papers`"""
    day = long_date(info).rsplit(",", 1)[0]
    return header_text(f"{site.title}, {day}: {count} new paper{'s' if count != 1 else ''}")


def build_message(*, site: Site, info: DigestInfo, body: EmailBody, count: int,
                  recipient: Recipient, from_name: str, from_address: str, msg_id: str,
                  now: datetime) -> EmailMessage:
    """Assemble the message for one recipient from a body rendered once per digest/topics."""
    mailto = f"mailto:{from_address}?subject=unsubscribe"
    personal = recipient.unsubscribe_url or mailto
    html = body.html.replace(UNSUBSCRIBE_MARKER, str(escape(personal)))
    text = body.text.replace(UNSUBSCRIBE_MARKER, personal)
    utf8 = not recipient.email.isascii() or not from_address.isascii()

    message = EmailMessage(policy=POLICY_UTF8 if utf8 else POLICY)
    message["From"] = _address(from_name, from_address)
    message["To"] = _address(recipient.name or "", recipient.email)
    message["Subject"] = subject(site, info, count)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = msg_id
    list_host = f"{_slug(site.title)}.{from_address.rpartition('@')[2]}"
    message["List-Id"] = f"{header_text(site.title)} <{list_host}>"
    if recipient.unsubscribe_url:
        message["List-Unsubscribe"] = f"<{mailto}>, <{recipient.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    else:
        message["List-Unsubscribe"] = f"<{mailto}>"
    message["Auto-Submitted"] = "auto-generated"
    message["Precedence"] = "bulk"
    # Plain text first, HTML last. Both encodings keep every line under 998 characters and
    # need no 8BITMIME from the server; base64 is the fast one for the long inlined HTML.
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="base64")
    return message


def _address(name: str, email: str) -> Address:
    # username/domain rather than addr_spec: the parser behind addr_spec refuses the
    # non-ASCII local parts that internationalised (SMTPUTF8) addresses have.
    username, _, domain = email.rpartition("@")
    return Address(header_text(name), username=username, domain=domain)


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.casefold()).strip("-") or "digest"
