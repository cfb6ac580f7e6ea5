"""What keeps `digest serve` up for everyone: security headers on every response (errors
included), a cap on request bodies, rate limits that forget, and confirmation mail sent
from a background thread so that no page waits on a mail server.

Pure ASGI middleware rather than Starlette's BaseHTTPMiddleware: it wraps the whole app,
so even a 500 from Starlette's error handler and a 413 sent before routing carry the
headers, and a body is counted as it streams in, before anything parses it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' "
                                "data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    # Links carry tokens: never send them on to another site.
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


_RAW_SECURITY_HEADERS = [(name.lower().encode(), value.encode())
                         for name, value in SECURITY_HEADERS.items()]


class SecurityHeaders:
    """Add the security headers to every HTTP response, whoever produced it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                # Raw byte pairs, added only where the response set none of its own.
                headers += [pair for pair in _RAW_SECURITY_HEADERS if pair[0] not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(HTTPException):
    """A request body went past the configured cap while it was being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request bodies are limited to {limit} bytes.")


class BodyLimit:
    """Refuse bodies over `limit` bytes: at once when Content-Length says so, else as the
    bytes arrive, so a large or endless body is never buffered whole or parsed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.limit:
            status, text = (400, "Bad Content-Length.") if not declared.isdigit() else (
                413, f"Request bodies are limited to {self.limit} bytes.")
            await PlainTextResponse(text, status_code=status)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)


class RateLimits:
    """Moving-window limits per key, in memory; the `limits` library expires old keys."""

    def __init__(self) -> None:
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def allow(self, rate: str, kind: str, key: str) -> bool:
        """Count one hit of `key` against `rate` ("5 per 10 minutes"); False when over."""
        return bool(self.limiter.hit(parse(rate), kind, key))


class Mailer:
    """Runs `work(email, topics)` on one background thread, in order, so requests never wait
    on a mail server (or on the store lookups a confirmation needs)."""

    def __init__(self, work: Callable[[str, str], None], backlog: int = 1000) -> None:
        self.work = work
        self.jobs: queue.Queue[tuple[str, str]] = queue.Queue(backlog)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, email: str, topics: str) -> bool:
        """Queue one confirmation email; False when the backlog is full (it is dropped)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="confirmations",
                                                daemon=True)
                self._thread.start()
        try:
            self.jobs.put_nowait((email, topics))
        except queue.Full:
            logger.warning("confirmation backlog full: dropped a request for %s", email)
            return False
        return True

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every queued email has been handled (or `timeout` seconds passed)."""
        waiter = threading.Thread(target=self.jobs.join, daemon=True)
        waiter.start()
        waiter.join(timeout)
        return not waiter.is_alive()

    def _run(self) -> None:
        while True:
            email, topics = self.jobs.get()
            try:
                self.work(email, topics)
            # A worker thread outlives any one job: log the failure, keep serving the queue.
            except Exception:  # noqa: BLE001
                logger.exception("confirmation email to %s failed", email)
            finally:
                self.jobs.task_done()
