"""The send fast path: a message serialised once and filled in per recipient is, byte for
byte, the message build_message makes for that recipient; recipients it cannot write
itself fall back to build_message."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from digest.mail.message import (
    PREFERENCES_MARKER,
    UNSUBSCRIBE_MARKER,
    MessageTemplate,
    PreparedBody,
    Recipient,
    build_message,
    message_id,
)
from digest.models import DigestInfo
from digest.publish.site import EmailBody, Site

SITE = Site(title="Daily Papers", base_url="https://papers.example.org")
INFO = DigestInfo(name="2026-03-13", captured_at=datetime(2026, 3, 13, tzinfo=UTC), paper_count=3)
NOW = datetime(2026, 11, 25, 8, 0, 1, tzinfo=UTC)


def body(long_lines: bool) -> PreparedBody:
    """A body with both personal links, a line starting with a dot, non-ASCII text, and
    (optionally) a line too long for 8bit, which makes both parts base64."""
    filler = ("x" * 1200) if long_lines else "short"
    text = (f"MedS³ and Q&A <and> more\n.a line starting with a dot\n{filler}\n"
            f"Unsubscribe: {UNSUBSCRIBE_MARKER}\nTopics: {PREFERENCES_MARKER}\n")
    html = (f"<p>MedS³ &amp; more</p>\n<p>{filler}</p>\n<a href=\"{UNSUBSCRIBE_MARKER}\">"
            f"Unsubscribe</a> <a href=\"{PREFERENCES_MARKER}\">Topics</a>\n")
    return PreparedBody.of(EmailBody(html=html, text=text, shown=3, total=3,
                                     first_title="MedS³: Towards Medical Small Models"), 3)


PLAIN_NAMES = st.from_regex(r"[A-Za-z0-9]{1,8}( [A-Za-z0-9]{1,8}){0,2}", fullmatch=True)
ANY_NAMES = st.one_of(st.none(), PLAIN_NAMES, st.text(max_size=30))
PLAIN_EMAILS = st.from_regex(r"[a-z0-9._+-]{1,12}@[a-z0-9-]{1,10}\.org", fullmatch=True)
EMAILS = st.one_of(PLAIN_EMAILS, st.sampled_from(["josé@exämple.org", "a@b.org"]))
TOKENS = st.from_regex(r"[A-Za-z0-9_.-]{10,60}", fullmatch=True)


def _template(eight_bit: bool, personal: bool, long_lines: bool
              ) -> tuple[MessageTemplate, PreparedBody]:
    prepared = body(long_lines)
    return MessageTemplate(site=SITE, info=INFO, body=prepared, from_name="Daily Papers",
                           from_address="papers@example.org", eight_bit=eight_bit,
                           personal=personal), prepared


@settings(max_examples=150, deadline=None)
@given(eight_bit=st.booleans(), personal=st.booleans(), long_lines=st.booleans(),
       name=ANY_NAMES, email=EMAILS, token=TOKENS)
def test_the_fast_path_writes_exactly_what_build_message_writes(
        eight_bit: bool, personal: bool, long_lines: bool, name: str | None, email: str,
        token: str) -> None:
    template, prepared = _template(eight_bit, personal, long_lines)
    links = ((f"https://papers.example.org/unsubscribe?token={token}",
              f"https://papers.example.org/preferences?token={token}x") if personal else (None, None))
    recipient = Recipient(email, name, *links)
    msg_id = message_id(INFO.name, 42, email, "papers.example.org")
    fast = template.render(recipient, msg_id, NOW)
    slow = build_message(site=SITE, info=INFO, body=prepared, recipient=recipient,
                         from_name="Daily Papers", from_address="papers@example.org",
                         msg_id=msg_id, now=NOW, eight_bit=eight_bit).as_bytes()
    if fast is not None:
        assert fast == slow
    # The common recipient (a plain address, a plain name or none) really takes the fast path.
    if email.isascii() and (not name or re.fullmatch(r"[A-Za-z0-9]+(?: [A-Za-z0-9]+)*", name)):
        assert fast is not None, (name, email)


def test_recipients_the_fast_path_cannot_write_fall_back() -> None:
    template, _ = _template(True, True, False)
    for recipient in (Recipient("josé@exämple.org", None, "https://p.example/u", "https://p.example/p"),
                      Recipient("ada@example.org", "Ada L.", "https://p.example/u", "https://p.example/p"),
                      Recipient("ada@example.org", None, "https://p.example/" + "u" * 300,
                                "https://p.example/p"),
                      Recipient("ada@example.org", None, None, None)):  # a template with links
        assert template.render(recipient, "<x@example.org>", NOW) is None
