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
from datetime import UTC, datetime
from email import base64mime, policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from markupsafe import escape

from digest.models import DigestInfo
from digest.publish.site import EmailBody, Site, long_date
from digest.text import one_line, plural, shorten

# Fold only where RFC 5322 forces it (998), so URLs in headers stay intact and unencoded.
POLICY = policy.SMTP.clone(max_line_length=998)
POLICY_UTF8 = policy.SMTPUTF8.clone(max_line_length=998)
# Stands in the rendered body for each subscriber's own unsubscribe link.
UNSUBSCRIBE_MARKER = "https://unsubscribe.invalid/paper-digest-subscriber-link"
PREFERENCES_MARKER = "https://preferences.invalid/paper-digest-subscriber-link"
_MARKERS = (UNSUBSCRIBE_MARKER.encode(), PREFERENCES_MARKER.encode())
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
    preferences_url: str | None = None  # the topic preferences page (same condition)


def message_id(digest: str, subscriber_id: int, email: str, domain: str) -> str:
    """The same Message-ID for the same (digest, subscriber), on every try."""
    tag = hashlib.sha256(f"{digest}\0{subscriber_id}\0{email.casefold()}".encode()).hexdigest()[:20]
    return f"<digest.{digest}.{subscriber_id}.{tag}@{domain}>"


SUBJECT_LENGTH = 78  # what an inbox list shows, and RFC 5322's recommended line length


def subject(site: Site, info: DigestInfo, count: int, first_title: str = "") -> str:
    """`Daily Papers, Mar 13: 6 new · MedS³: Towards Medical Small…`: the count, then as much
    of the first paper's title as fits in 78 characters."""
    day = long_date(info).rsplit(",", 1)[0]
    head = header_text(f"{site.title}, {day}: {plural(count, 'new paper')}")
    title = header_text(first_title)
    if not title or len(head) + 3 + 12 > SUBJECT_LENGTH:
        return head
    return f"{head} · {shorten(title, SUBJECT_LENGTH - len(head) - 3)}"


# A body line under this length can travel as 8bit (RFC 5322 allows 998).
_MAX_LINE = 990


@dataclass(frozen=True)
class _Encoded:
    """One body part, prepared once for many recipients.

    As 8bit when every line is short enough (the fast path: no encoding at all), else as
    base64 encoded once up to the block that holds the subscriber's own link.
    """

    content: str
    head: str  # base64 lines of the bytes before the 57-byte block holding the marker
    tail: bytes  # the rest, personalised and encoded per recipient
    short_lines: bool

    @classmethod
    def of(cls, content: str) -> _Encoded:
        data = content.encode("utf-8")
        found = [i for i in (data.find(m) for m in _MARKERS) if i >= 0]
        where = min(found) if found else -1
        # base64 lines hold 57 bytes each: cutting at a multiple of 57 lets the head's
        # encoding be reused and the tail's appended, exactly as if encoded in one go.
        cut = len(data) - len(data) % 57 if where < 0 else where - where % 57
        short = max(map(len, content.splitlines()), default=0) < _MAX_LINE
        return cls(content=content, head=base64mime.body_encode(data[:cut]), tail=data[cut:],
                   short_lines=short)

    def part(self, subtype: str, links: dict[str, str], eight_bit: bool) -> EmailMessage:
        """The part for one recipient, with `links` (marker -> URL) put in."""
        part = EmailMessage(policy=POLICY)
        part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
        if eight_bit and self.short_lines and all(len(url) < 200 for url in links.values()):
            part["Content-Transfer-Encoding"] = "8bit"
            content = self.content
            for marker, url in links.items():
                content = content.replace(marker, url)
            # The email package keeps raw 8bit bodies as surrogate-escaped str; the bytes
            # generator writes them back out unchanged.
            part.set_payload(content.encode("utf-8").decode("ascii", "surrogateescape"))
        else:
            part["Content-Transfer-Encoding"] = "base64"
            tail = self.tail
            for marker, url in links.items():
                tail = tail.replace(marker.encode(), url.encode("utf-8"))
            part.set_payload(self.head + base64mime.body_encode(tail))
        return part


@dataclass(frozen=True)
class PreparedBody:
    """An email body (rendered once per digest and topic list) ready for many recipients."""

    text: _Encoded
    html: _Encoded
    count: int  # papers in it, for the subject line
    first_title: str = ""  # also for the subject line

    @classmethod
    def of(cls, body: EmailBody, count: int) -> PreparedBody:
        return cls(text=_Encoded.of(body.text), html=_Encoded.of(body.html), count=count,
                   first_title=body.first_title)


def build_message(*, site: Site, info: DigestInfo, body: PreparedBody, recipient: Recipient,
                  from_name: str, from_address: str, msg_id: str, now: datetime,
                  eight_bit: bool = False) -> EmailMessage:
    """Assemble the message for one recipient from a body prepared once per digest/topics.

    `eight_bit` when the server takes 8BITMIME: parts with short lines then go unencoded.
    """
    mailto = f"mailto:{from_address}?subject=unsubscribe"
    personal = recipient.unsubscribe_url or mailto
    count = body.count
    utf8 = not recipient.email.isascii() or not from_address.isascii()

    message = EmailMessage(policy=POLICY_UTF8 if utf8 else POLICY)
    message["From"] = address_header(from_name, from_address)
    message["To"] = address_header(recipient.name or "", recipient.email)
    message["Subject"] = subject(site, info, count, body.first_title)
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
    message["MIME-Version"] = "1.0"
    # Plain text first, HTML last (clients show the last part they understand).
    message.make_alternative()
    prefs = recipient.preferences_url or site.link("index.html")
    message.attach(body.text.part(
        "plain", {UNSUBSCRIBE_MARKER: personal, PREFERENCES_MARKER: prefs}, eight_bit))
    message.attach(body.html.part(
        "html", {UNSUBSCRIBE_MARKER: str(escape(personal)), PREFERENCES_MARKER: str(escape(prefs))},
        eight_bit))
    # A boundary of our own (the generator would search 100 KB for a free one): '_' is
    # outside the base64 alphabet, and this random tag cannot occur in text we rendered.
    message.set_boundary(boundary(msg_id))
    return message


def address_header(name: str, email: str) -> Address:
    """An address header value; internationalised addresses stay UTF-8 (SMTPUTF8)."""
    # username/domain rather than addr_spec: the parser behind addr_spec refuses the
    # non-ASCII local parts that internationalised (SMTPUTF8) addresses have.
    username, _, domain = email.rpartition("@")
    return Address(header_text(name), username=username, domain=domain)


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.casefold()).strip("-") or "digest"


# -- many recipients, one serialisation -----------------------------------------------------

_SENTINEL_EMAIL = "paper-digest-recipient@sentinel.invalid"
_SENTINEL_ID = "<paper-digest-sentinel-message-id@sentinel.invalid>"
_SENTINEL_NOW = datetime(2000, 1, 1, tzinfo=UTC)
# A display name and an address the fast path can write itself (no quoting, no encoding).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9]+(?: [A-Za-z0-9]+)*")
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9._+-]+@[A-Za-z0-9.-]+")
_PLAIN_URL = re.compile(r"[!#-;=?-~]{1,199}")  # printable ASCII with no space, `<` or `>`


def boundary(msg_id: str) -> str:
    """The message's MIME boundary: '_' is outside the base64 alphabet, and this random
    tag cannot occur in text we rendered."""
    return f"=_paper-digest_{hashlib.sha256(msg_id.encode()).hexdigest()[:24]}"


class MessageTemplate:
    """One digest body's message, serialised once for all its recipients.

    `build_message(...).as_bytes()` costs milliseconds a message (17 headers parsed and
    folded, a 100 KB body written line by line); here the message is built once with
    stand-ins for what differs per recipient (To, Date, Message-ID and the boundary made
    from it, the two personal links), and each recipient's bytes are the template's with
    their own put in. `render` returns the same bytes build_message would (the tests check
    it across recipients), or None for a recipient it cannot write itself (a quoted or
    encoded name, an internationalised address, a long link): the caller then builds the
    message in full.
    """

    def __init__(self, *, site: Site, info: DigestInfo, body: PreparedBody, from_name: str,
                 from_address: str, eight_bit: bool, personal: bool) -> None:
        self.personal, self.usable = personal, from_address.isascii()
        links = (UNSUBSCRIBE_MARKER, PREFERENCES_MARKER) if personal else (None, None)
        message = build_message(
            site=site, info=info, body=body,
            recipient=Recipient(_SENTINEL_EMAIL, None, links[0], links[1]),
            from_name=from_name, from_address=from_address, msg_id=_SENTINEL_ID,
            now=_SENTINEL_NOW, eight_bit=eight_bit)
        data = message.as_bytes()
        head, _, rest = data.partition(b"\r\n\r\n")
        self.head = head + b"\r\n\r\n"
        self.boundary = boundary(_SENTINEL_ID).encode()
        # The body's pieces between boundary lines: preamble, text part, html part, end.
        self.pieces = rest.split(self.boundary)
        parts = [p for p in message.iter_parts() if isinstance(p, EmailMessage)]
        self.encoded = [(body.text, parts[0]), (body.html, parts[1])]
        self.base64 = [str(p["Content-Transfer-Encoding"]) == "base64" for _, p in self.encoded]
        self.usable = self.usable and len(self.pieces) == 4 and all(
            data.count(marker) == 0 or personal for marker in _MARKERS)

    def render(self, recipient: Recipient, msg_id: str, now: datetime) -> bytes | None:
        """This recipient's message as bytes, or None when it needs build_message."""
        links = (recipient.unsubscribe_url, recipient.preferences_url)
        if not (self.usable and _PLAIN_ADDRESS.fullmatch(recipient.email)
                and (not recipient.name or _PLAIN_NAME.fullmatch(recipient.name))
                and msg_id.isascii() and len(msg_id) < 200
                and (links[0] is not None) == self.personal == (links[1] is not None)
                and all(url is None or _PLAIN_URL.fullmatch(url) for url in links)):
            return None
        to = f"{recipient.name} <{recipient.email}>" if recipient.name else recipient.email
        head = (self.head.replace(b"\r\nTo: " + _SENTINEL_EMAIL.encode() + b"\r\n",
                                  b"\r\nTo: " + to.encode() + b"\r\n", 1)
                .replace(format_datetime(_SENTINEL_NOW).encode(), format_datetime(now).encode(), 1)
                .replace(_SENTINEL_ID.encode(), msg_id.encode(), 1)
                .replace(self.boundary, boundary(msg_id).encode(), 1))
        unsubscribe, preferences = links
        pieces = list(self.pieces)
        if unsubscribe is not None and preferences is not None:
            head = head.replace(_MARKERS[0], unsubscribe.encode())
            for index, ((encoded, _), base64) in enumerate(zip(self.encoded, self.base64, strict=True)):
                html = index == 1
                urls = (str(escape(unsubscribe)), str(escape(preferences))) if html else (
                    unsubscribe, preferences)
                piece = pieces[index + 1]
                if base64 and encoded.tail:
                    tail = encoded.tail
                    for marker, url in zip(_MARKERS, urls, strict=True):
                        tail = tail.replace(marker, url.encode())
                    old = base64mime.body_encode(encoded.tail).replace("\n", "\r\n").encode()
                    new = base64mime.body_encode(tail).replace("\n", "\r\n").encode()
                    piece = piece.replace(old, new, 1)
                elif not base64:
                    for marker, url in zip(_MARKERS, urls, strict=True):
                        piece = piece.replace(marker, url.encode())
                pieces[index + 1] = piece
        return head + boundary(msg_id).encode().join(pieces)
