"""A real SMTP server (aiosmtpd) on 127.0.0.1 for the delivery tests, scriptable per recipient.

`script[address]` is a list of actions used one per attempt: "ok", a reply such as
"451 4.3.0 try later" or "550 5.1.1 no such user" (at RCPT), "drop-rcpt" (hang up at
RCPT: before the message), "drop-after-data" (take the message, hang up without a reply).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_string, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


def content(part: EmailMessage) -> str:
    """A text part's content. Messages are parsed from UTF-8 text (their headers may be raw
    UTF-8), so an 8bit part's payload is already the text; get_content() would re-decode it."""
    if part["Content-Transfer-Encoding"] == "8bit":
        return str(part.get_payload()).replace("\r\n", "\n")  # as a mail client reads it
    return str(part.get_content())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Mailbox:
    """What the server received (only messages it answered 250) and what it was told to do."""

    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    script: dict[str, list[str]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    rcpt_order: list[str] = field(default_factory=list)  # every RCPT, in the order it came
    data_seen: list[bytes] = field(default_factory=list)
    on_data: Callable[[int], str | None] | None = None  # may return a reply to use instead
    gate: threading.Event | None = None  # when set up, RCPT waits until it is opened (a slow server)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def parsed(self) -> list[EmailMessage]:
        # Headers may be raw UTF-8 (SMTPUTF8): parse the text, not the bytes.
        return [message_from_string(raw.decode("utf-8"), policy=policy.default)  # type: ignore[misc]
                for _, _, raw in self.messages]

    def to(self, address: str) -> list[EmailMessage]:
        return [m for (_, rcpts, _), m in zip(self.messages, self.parsed(), strict=True)
                if address in rcpts]

    def _action(self, address: str) -> str:
        with self.lock:
            n = self.attempts.get(address, 0)
            self.attempts[address] = n + 1
            self.rcpt_order.append(address)
        steps = self.script.get(address, [])
        return steps[n] if n < len(steps) else "ok"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if self.gate is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 60)
        action = self._action(address)
        if action == "drop-rcpt":
            server.transport.close()
            return "421 closing"
        if action not in ("ok", "drop-after-data"):
            return action
        if action == "drop-after-data":
            envelope.__dict__.setdefault("drop", True)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        self.data_seen.append(raw)
        if envelope.__dict__.get("drop"):
            server.transport.close()
            return "250 never heard"
        if self.on_data is not None:
            reply = self.on_data(len(self.data_seen))
            if reply is not None:
                return reply
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), raw))
        return "250 2.0.0 queued"


class SmtpServer:
    """Start/stop an aiosmtpd Controller around a Mailbox."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox
        self.port = free_port()
        self.controller = Controller(mailbox, hostname="127.0.0.1", port=self.port,
                                     decode_data=False, enable_SMTPUTF8=True)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def env(self) -> dict[str, str]:
        return {"DIGEST_EMAIL_SMTP_HOST": "127.0.0.1", "DIGEST_EMAIL_SMTP_PORT": str(self.port),
                "DIGEST_EMAIL_SMTP_SECURITY": "none"}


class ScriptedSmtp:
    """A bare SMTP server on a socket, for faults aiosmtpd cannot make: each connection
    takes the next behaviour from `connections` ("ok" once the list is used up).

    "drop-mid-data": answer DATA with 354, then hang up before the message is complete,
    as a server that crashes or times out does.
    """

    def __init__(self, connections: list[str]) -> None:
        self.connections = list(connections)
        self.messages: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.stopping = False

    def __enter__(self) -> ScriptedSmtp:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping = True
        socket.create_connection(("127.0.0.1", self.port)).close()  # wakes accept()
        self.thread.join(5)
        self.sock.close()

    def _serve(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            if self.stopping:
                conn.close()
                return
            behaviour = self.connections.pop(0) if self.connections else "ok"
            with conn:
                try:
                    self._session(conn, behaviour)
                except OSError:
                    pass

    def _session(self, conn: socket.socket, behaviour: str) -> None:
        reader = conn.makefile("rb")
        conn.sendall(b"220 scripted ESMTP\r\n")
        while line := reader.readline():
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                conn.sendall(b"250-scripted\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                if behaviour == "drop-mid-data":
                    return  # hang up while the message is being sent
                data = b""
                while not data.endswith(b"\r\n.\r\n"):
                    chunk = reader.readline()
                    if not chunk:
                        return
                    data += chunk
                self.messages.append(data)
                conn.sendall(b"250 2.0.0 queued\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:  # MAIL, RCPT, RSET, NOOP
                conn.sendall(b"250 OK\r\n")
