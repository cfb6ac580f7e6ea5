"""Ways a message leaves: an SMTP server, or the outbox folder (the embedded default).

A transport's `send` returns the server's reply on acceptance and raises:
- `Transient` when it is safe to try again (4xx, or the connection dropped before the
  message was complete: the server cannot have accepted it);
- `Permanent` for a 5xx refusal of this recipient;
- `Unknown` when the message was sent but no reply came back: it may have been delivered,
  so it must not be resent blindly.
"""

from __future__ import annotations

import re
import select
import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from digest.config import EmailSettings
from digest.publish.output import write_atomic


class Transient(Exception):
    """Try again later: nothing was delivered. `unreachable` when no connection can be made."""

    def __init__(self, reason: str, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.unreachable = unreachable


class Permanent(Exception):
    """The server refused this message for good."""


class Unknown(Exception):
    """The message went out but its fate is unknown."""


class Transport(Protocol):
    """Sends one message: an EmailMessage, or its bytes as `as_bytes()` gives them (CRLF)."""

    def send(self, message: EmailMessage | bytes, sender: str, recipient: str, label: str) -> str: ...

    def eight_bit(self) -> bool: ...

    def close(self) -> None: ...


class OutboxTransport:
    """Writes each message to `outbox/<digest>/<subscriber>.eml`, openable in any mail client."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, message: EmailMessage | bytes, sender: str, recipient: str, label: str) -> str:
        digest, _, who = label.partition("/")
        path = self.folder / _safe(digest) / f"{_safe(who)}.eml"
        write_atomic(path, message if isinstance(message, bytes) else message.as_bytes())
        return f"250 written to {path}"

    def eight_bit(self) -> bool:
        return True  # mail clients read 8bit .eml files

    def close(self) -> None:
        return None


def _safe(name: str) -> str:
    return re.sub(r"[^\w@.+-]", "_", name)[:150] or "_"


class SmtpTransport:
    """One SMTP connection for the whole batch, opened on first use and after a drop.

    `timeout` bounds each command's reply; the reply to the end of the message may take
    `final_reply_timeout` (RFC 5321 4.5.3.2.6: 10 minutes), since giving up on it early
    leaves a message that may have been delivered.
    """

    def __init__(self, settings: EmailSettings, timeout: float | None = None,
                 connect: Callable[[], smtplib.SMTP] | None = None,
                 final_reply_timeout: float | None = None) -> None:
        self.settings = settings
        self.timeout = float(timeout or settings.smtp_timeout)
        self.final_reply_timeout = float(final_reply_timeout or settings.final_reply_timeout)
        self._connect = connect or self._open
        self._conn: smtplib.SMTP | None = None

    def _open(self) -> smtplib.SMTP:
        s = self.settings
        host = s.smtp_host or "localhost"
        context = ssl.create_default_context()
        conn: smtplib.SMTP
        if s.smtp_security == "tls":
            conn = smtplib.SMTP_SSL(host, s.smtp_port, timeout=self.timeout, context=context)
        else:
            conn = smtplib.SMTP(host, s.smtp_port, timeout=self.timeout)
        conn.ehlo()
        if s.smtp_security == "starttls":
            conn.starttls(context=context)
            conn.ehlo()
        if s.smtp_user:
            conn.login(s.smtp_user, s.smtp_password or "")
        return conn

    def _connection(self) -> smtplib.SMTP:
        if self._conn is None:
            try:
                self._conn = self._connect()
            except smtplib.SMTPAuthenticationError as exc:
                raise Permanent(f"login refused: {_reply(exc.smtp_code, exc.smtp_error)}") from None
            except (OSError, smtplib.SMTPException) as exc:
                raise Transient(f"cannot connect to {self.settings.smtp_host}:"
                                f"{self.settings.smtp_port} ({exc})", unreachable=True) from None
        return self._conn

    def send(self, message: EmailMessage | bytes, sender: str, recipient: str, label: str) -> str:
        if isinstance(message, bytes):  # serialised by MessageTemplate, with CRLF line ends
            data = _dot_stuffed(message, crlf=True)
        else:
            data = _dot_stuffed(message.as_bytes(), crlf=message.policy.linesep == "\r\n")
        smtputf8 = not (sender + recipient).isascii()
        conn = self._connection()
        try:
            options = ["SMTPUTF8"] if smtputf8 and conn.has_extn("smtputf8") else []
            if smtputf8 and not options:
                raise Permanent("the server does not support SMTPUTF8, needed for this address")
            if conn.has_extn("8bitmime"):
                options.append("BODY=8BITMIME")
            self._expect(conn, conn.mail(sender, options), (250,), reset=True)
            self._expect(conn, conn.rcpt(recipient), (250, 251), reset=True)
            self._expect(conn, conn.docmd("data"), (354,), reset=True)
            # Until the final "." the server holds an incomplete message: a drop is safe.
            conn.send(data[:-len(_END)])
            if _peer_gone(conn):
                raise smtplib.SMTPServerDisconnected("the server hung up mid-message")
            conn.send(_END)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise Transient(f"connection lost before the message was complete ({exc})") from None
        try:
            if conn.sock is not None:
                conn.sock.settimeout(self.final_reply_timeout)
            code, text = conn.getreply()
            if conn.sock is not None:
                conn.sock.settimeout(self.timeout)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise Unknown(f"no reply after the message was sent ({exc})") from None
        self._expect(conn, (code, text), (250,), reset=False)
        return _reply(code, text)

    def eight_bit(self) -> bool:
        """True once connected to a server that takes 8BITMIME (before that: play safe)."""
        return self._conn is not None and bool(self._conn.has_extn("8bitmime"))

    def _expect(self, conn: smtplib.SMTP, answer: tuple[int, bytes], ok: tuple[int, ...],
                reset: bool) -> None:
        code, text = answer
        if code in ok:
            return
        if reset:
            try:
                conn.rset()
            except (smtplib.SMTPException, OSError):
                self._drop()
        if code == 421 or code < 0:  # the server is closing the connection
            self._drop()
        if 400 <= code < 500 or code < 0:
            raise Transient(_reply(code, text))
        raise Permanent(_reply(code, text))

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (smtplib.SMTPException, OSError):
                pass
            finally:
                self._drop()


_END = b".\r\n"  # the end of a message's DATA


def _peer_gone(conn: smtplib.SMTP) -> bool:
    """True when the server hung up (or spoke) before the end of the message was sent.

    A server waiting for the rest of a message says nothing; anything readable now is a
    hang-up or an error, and sending the final "." would turn a safe retry into an unknown.
    """
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}"


def _dot_stuffed(data: bytes, crlf: bool = False) -> bytes:
    """The DATA payload as smtplib.data() sends it: CRLF lines, leading dots doubled, '.' end."""
    if not crlf:  # a message serialised with policy.SMTP has CRLF line ends already

        data = re.sub(rb"(?:\r\n|\n|\r(?!\n))", b"\r\n", data)
    if data.startswith(b".") or b"\n." in data:
        data = re.sub(rb"(?m)^\.", b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def make_transport(settings: EmailSettings, outbox: Path) -> Transport:
    """SMTP when a host is configured, else the outbox folder."""
    if settings.smtp_host:
        return SmtpTransport(settings)
    return OutboxTransport(outbox)
