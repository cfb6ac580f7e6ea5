"""`digest serve`: the reader's side, as a small Starlette app.

The archive, each digest, each paper's history, the feeds (with ETag/Last-Modified and
304s), subscribing with double opt-in, unsubscribing (a page with one button, and RFC
8058 one-click POSTs), and topic preferences. Starlette because the app is a handful of
routes: no ORM, no sessions, no templates of its own (it reuses the digest templates),
and its test client is httpx, which the project already uses.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from digest import subscribers as book
from digest.config import Settings
from digest.errors import SubscriberError
from digest.feeds import build_feeds
from digest.message import POLICY, POLICY_UTF8, address_header, header_text
from digest.render import environment, long_date, paper_view, render_page
from digest.store import Store
from digest.tokens import (
    confirm_token,
    read_confirm_token,
    read_preferences_token,
    read_unsubscribe_token,
)
from digest.transport import Permanent, Transient, Transport, Unknown, make_transport

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' "
                                "data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    # Links carry tokens: never send them on to another site.
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
CSRF_COOKIE = "digest_csrf"
SUBSCRIBE_LIMIT = (5, 600.0)  # requests per client address per 10 minutes


class _Security(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response


class RateLimit:
    """A sliding window per client address (in memory: one process serves the app)."""

    def __init__(self, count: int, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.count, self.seconds, self.clock = count, seconds, clock
        self.hits: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, client: str) -> bool:
        now, window = self.clock(), self.hits[client]
        while window and now - window[0] > self.seconds:
            window.popleft()
        if len(window) >= self.count:
            return False
        window.append(now)
        return True


def create_app(store: Store, settings: Settings, *,
               transport: Callable[[], Transport] | None = None,
               clock: Callable[[], float] = time.time, dev: bool = False) -> Starlette:
    """The web app over a store; `transport` sends confirmation emails (default: configured).

    It signs with DIGEST_SECRET, as `digest send` does, so emailed links work here and
    after a restart; `dev` alone allows a throwaway key.
    """
    if dev and not settings.email.secret:
        secret = secrets.token_urlsafe(32)
    else:
        secret = settings.email.require_secret(
            "the web app signs its links and forms with it (digest serve --dev: a throwaway key)")
    site = settings.site
    env = environment(settings.templates)
    limiter = RateLimit(*SUBSCRIBE_LIMIT)
    make = transport or (lambda: make_transport(settings.email, settings.out_dir / "outbox"))

    def link(path: str) -> str:
        return site.link(path) if site.base_url else "/" + path

    def page(request: Request, heading: str, message: str, status: int = 200,
             form: dict[str, Any] | None = None) -> Response:
        token = _csrf_token(request, secret)
        if form is not None:
            form["fields"] = [*form.get("fields", []), ("csrf", token)]
        html = env.get_template("web_page.html").render(
            site=site, heading=heading, message=message, form=form, index_url=link(""),
            feed_url=link("feed.xml"), atom_url=link("atom.xml"))
        return _with_csrf_cookie(HTMLResponse(html, status_code=status), request, token)

    async def archive(request: Request) -> Response:
        token = _csrf_token(request, secret)
        html = env.get_template("index.html").render(
            site=site, digests=store.digests(), long_date=long_date,
            feed_url=link("feed.xml"), atom_url=link("atom.xml"),
            subscribe={"action": link("subscribe"), "csrf": token})
        return _with_csrf_cookie(HTMLResponse(html), request, token)

    async def digest_page(request: Request) -> Response:
        name = request.path_params["name"].removesuffix(".html")
        info = store.digest(name)
        if info is None:
            return page(request, "Not found", f"There is no digest {name}.", 404)
        views = [paper_view(p) for p in store.digest_papers(name)]
        return HTMLResponse("".join(render_page(site, info, views, settings.templates,
                                                history_base=link("papers/"))))

    async def paper_page(request: Request) -> Response:
        found = store.paper_history(request.path_params["key"])
        if found is None:
            return page(request, "Not found", "No paper has this key.", 404)
        stored, seen = found
        upvotes = [s["upvotes"] for s in seen if s["upvotes"] is not None]
        html = env.get_template("paper.html").render(
            site=site, paper=paper_view(stored), sightings=[
                {**s, "captured_at": f"{s['captured_at']:%Y-%m-%d %H:%M}"} for s in seen],
            first_seen=f"{stored.first_seen:%Y-%m-%d}", digest=stored.digest,
            digest_url=link(f"digests/{stored.digest}.html") if stored.digest else "",
            chart=_chart(upvotes), index_url=link(""), feed_url=link("feed.xml"),
            atom_url=link("atom.xml"))
        return HTMLResponse(html)

    def feed(kind: str) -> Callable[[Request], Any]:
        async def serve(request: Request) -> Response:
            papers = store.feed_papers(settings.feed_size)
            rss, atom = build_feeds(site, papers)
            body = rss if kind == "rss" else atom
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            newest = max((p.first_seen for p in papers), default=datetime(1970, 1, 1, tzinfo=UTC))
            headers = {"ETag": etag, "Last-Modified": format_datetime(newest, usegmt=True),
                       "Cache-Control": "public, max-age=300"}
            if request.headers.get("if-none-match") == etag:
                return Response(status_code=304, headers=headers)
            media = "application/rss+xml" if kind == "rss" else "application/atom+xml"
            return Response(body, media_type=f"{media}; charset=utf-8", headers=headers)
        return serve

    async def subscribe(request: Request) -> Response:
        form = await request.form()
        if not _csrf_ok(request, form, secret):
            return page(request, "Please try again", "The form expired. Reload the page and "
                        "subscribe again.", 403)
        client = request.client.host if request.client else "unknown"
        if not limiter.allow(client):
            return page(request, "Too many requests", "Please wait a few minutes and try "
                        "again.", 429)
        try:
            email = book.normalize_address(str(form.get("email", "")))
        except SubscriberError:
            return page(request, "Check the address", "That does not look like an email "
                        "address. Go back and try again.", 400)
        topics = ", ".join(book.parse_topics(str(form.get("topics", ""))[:500]))
        known = book.find(store, email)
        if known is None or known.status != book.ACTIVE:
            token = confirm_token(secret, email, topics, book.consent_state(known))
            _send_confirmation(make(), settings, email, link(f"confirm?token={token}"))
        # The same answer whether or not the address is already subscribed.
        return page(request, "Check your inbox", f"If {email} can receive mail, a "
                    "confirmation link is on its way. It works for 48 hours.")

    async def confirm(request: Request) -> Response:
        token = request.query_params.get("token", "")
        if request.method == "POST":
            form = await request.form()
            token = str(form.get("token", ""))
            if not _csrf_ok(request, form, secret):
                return page(request, "Please try again", "The form expired. Open the link "
                            "from the email again.", 403)
        found = read_confirm_token(secret, token, now=clock())
        known = book.find(store, found[0]) if found else None
        if found is not None and found[2] != book.consent_state(known):
            if known is not None and known.status == book.ACTIVE:  # a second click: no change
                return page(request, "You are subscribed", f"{known.email} gets the next digest.")
            found = None  # used already, or the subscription changed since (unsubscribed)
        if found is None:
            return page(request, "Link not valid", "This confirmation link is not valid, was "
                        "used already or has expired (links work for 48 hours). Subscribe "
                        "again.", 400)
        email, topics, _ = found
        if request.method == "GET":  # mail scanners follow links: change nothing on GET
            return page(request, "Confirm your subscription", f"Send {site.title} to "
                        f"{email}?", form={"action": link("confirm"), "button": "Confirm",
                                          "fields": [("token", token)], "topics": None})
        if known is None or known.status != book.ACTIVE:
            book.add(store, email, topics=topics or None)
        return page(request, "You are subscribed", f"{email} will get the next digest.")

    async def unsubscribe(request: Request) -> Response:
        token = request.query_params.get("token", "")
        form: FormData | None = None
        if request.method == "POST":
            form = await request.form()
            token = token or str(form.get("token", ""))
        subscriber_id = read_unsubscribe_token(secret, token)
        one_click = form is not None and form.get("List-Unsubscribe") == "One-Click"
        if subscriber_id is None:
            return page(request, "Link not valid", "This unsubscribe link is not valid. Use "
                        "the link from the latest email, or reply to it.", 400)
        if request.method == "GET":
            return page(request, "Unsubscribe", f"Stop sending {site.title} to you?",
                        form={"action": link("unsubscribe"), "button": "Unsubscribe",
                              "fields": [("token", token)], "topics": None})
        if not one_click and (form is None or not _csrf_ok(request, form, secret)):
            return page(request, "Please try again", "The form expired. Open the link from "
                        "the email again.", 403)
        book.set_status_by_id(store, subscriber_id, book.UNSUBSCRIBED)
        if one_click:  # RFC 8058: the mail provider posts this; a plain 200 is the answer
            return Response("unsubscribed\n", media_type="text/plain")
        return page(request, "Unsubscribed", "You will get no more emails. Sorry to see you go.")

    async def preferences(request: Request) -> Response:
        token = request.query_params.get("token", "")
        form: FormData | None = None
        if request.method == "POST":
            form = await request.form()
            token = str(form.get("token", ""))
        subscriber_id = read_preferences_token(secret, token)
        current = book.by_id(store, subscriber_id) if subscriber_id is not None else None
        if current is None:
            return page(request, "Link not valid", "This preferences link is not valid.", 400)
        if current.status == book.UNSUBSCRIBED:
            # An old email's link: say where they stand, and offer the way back (which
            # goes through the confirmation email like any subscription).
            return page(request, "You are unsubscribed", f"{current.email} gets no more "
                        f"{site.title} emails. Changed your mind? Subscribe again: we will "
                        "send a confirmation link.",
                        form={"action": link("subscribe"), "button": "Subscribe again",
                              "fields": [("email", current.email)], "topics": None})
        if form is not None:
            if not _csrf_ok(request, form, secret):
                return page(request, "Please try again", "The form expired. Reload the page.", 403)
            topics = ", ".join(book.parse_topics(str(form.get("topics", ""))[:500]))
            current = book.set_topics(store, current.id, topics) or current
        return page(request, "Your topics", "Only new papers whose title or abstract mentions "
                    "one of these are sent to you; leave it empty for every new paper.",
                    form={"action": link("preferences"), "button": "Save",
                          "fields": [("token", token)], "topics": ", ".join(current.topics)})

    routes = [
        Route("/", archive), Route("/index.html", archive),
        Route("/digests/{name}", digest_page), Route("/papers/{key:path}", paper_page),
        Route("/feed.xml", feed("rss")), Route("/atom.xml", feed("atom")),
        Route("/subscribe", subscribe, methods=["POST"]),
        Route("/confirm", confirm, methods=["GET", "POST"]),
        Route("/unsubscribe", unsubscribe, methods=["GET", "POST"]),
        Route("/preferences", preferences, methods=["GET", "POST"]),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(_Security)])
    app.state.secret = secret
    return app


def _csrf_token(request: Request, secret: str) -> str:
    """Double-submit token: a random value in a cookie, signed, echoed in every form."""
    current = request.cookies.get(CSRF_COOKIE, "")
    if _csrf_valid(current, secret):
        return current
    nonce = secrets.token_urlsafe(16)
    return f"{nonce}.{_sign(nonce, secret)}"


def _csrf_valid(token: str, secret: str) -> bool:
    nonce, _, mac = token.partition(".")
    return bool(nonce) and hmac.compare_digest(mac, _sign(nonce, secret))


def _csrf_ok(request: Request, form: FormData, secret: str) -> bool:
    cookie, sent = request.cookies.get(CSRF_COOKIE, ""), str(form.get("csrf", ""))
    return _csrf_valid(cookie, secret) and hmac.compare_digest(cookie, sent)


def _sign(value: str, secret: str) -> str:
    return hmac.new(secret.encode(), f"csrf:{value}".encode(), hashlib.sha256).hexdigest()[:32]


def _with_csrf_cookie(response: Response, request: Request, token: str) -> Response:
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
    return response


def _chart(values: list[int]) -> dict[str, Any] | None:
    """An inline SVG polyline of upvotes over sightings (no scripts, no external files)."""
    if len(values) < 2:
        return None
    width, height = 600, 120
    top = max(values) or 1
    step = width / (len(values) - 1)
    points = " ".join(f"{i * step:.1f},{height - 8 - (v / top) * (height - 16):.1f}"
                      for i, v in enumerate(values))
    return {"width": width, "height": height, "points": points,
            "label": f"Upvotes over {len(values)} sightings (max {top})"}


def _send_confirmation(transport: Transport, settings: Settings, email: str, url: str) -> None:
    utf8 = not (email + settings.email.from_address).isascii()
    message = EmailMessage(policy=POLICY_UTF8 if utf8 else POLICY)
    message["From"] = address_header(settings.email.from_name, settings.email.from_address)
    message["To"] = address_header("", email)
    message["Subject"] = header_text(f"Confirm your {settings.site.title} subscription")
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=settings.email.domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(f"Someone (we hope you) asked to get {settings.site.title} at this "
                        f"address.\n\nTo confirm, open this link within 48 hours:\n\n{url}\n\n"
                        "If it was not you, ignore this email: nothing happens without the "
                        "link.\n")
    try:
        transport.send(message, settings.email.from_address, email, f"confirm/{email}")
    except (Transient, Permanent, Unknown):
        pass  # the page says the same either way; the person can try again
    finally:
        transport.close()
