"""`digest serve`: the reader's side, as a small Starlette app.

The archive, each digest, each paper's history, the feeds (with ETag/Last-Modified and
304s), subscribing with double opt-in, unsubscribing (a page with one button, and RFC
8058 one-click POSTs), and topic preferences. Starlette because the app is a handful of
routes: no ORM, no sessions, no templates of its own (it reuses the digest templates),
and its test client is httpx, which the project already uses.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, cast

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from digest.config import Settings
from digest.errors import SubscriberError
from digest.mail import subscribers as book
from digest.mail.message import POLICY, POLICY_UTF8, address_header, header_text
from digest.mail.tokens import (
    confirm_token,
    read_confirm_token,
    read_preferences_token,
    read_unsubscribe_token,
)
from digest.mail.transport import Permanent, Transient, Transport, Unknown, make_transport
from digest.models import StoredPaper
from digest.publish.chart import history_chart
from digest.publish.feeds import (
    TOPIC_FEED_WINDOW,
    FeedPlace,
    build_feeds,
    matching,
    topic_slug,
    topics_from_slug,
)
from digest.publish.render import environment, paper_view, render_page
from digest.publish.site import long_date
from digest.store import Store
from digest.web.page_cache import CachedPage, PageCache, not_modified
from digest.web.safety import BodyLimit, Mailer, RateLimits, SecurityHeaders

CSRF_COOKIE = "digest_csrf"
HTML = "text/html; charset=utf-8"
# Stands for the per-request CSRF token in the cached archive page (URL-safe, never escaped).
_TOKEN_SLOT = "csrf-token-slot-0e6f1c"
FORM_FIELDS = 20  # more than any form here has
SHUTDOWN_WAIT = 30.0  # seconds a stopping server waits for queued confirmation emails


class _App(Starlette):
    """Starlette with the body cap and security headers outside everything, errors included."""

    def __init__(self, max_body: int, trusted_proxies: str, **options: Any) -> None:
        super().__init__(**options)
        self.max_body, self.trusted_proxies = max_body, trusted_proxies

    def build_middleware_stack(self) -> ASGIApp:
        app: ASGIApp = BodyLimit(super().build_middleware_stack(), self.max_body)
        if self.trusted_proxies:  # X-Forwarded-For only from these, never from clients
            # uvicorn's ASGI types are stricter than Starlette's; the protocol is the same.
            app = cast(ASGIApp, ProxyHeadersMiddleware(cast(Any, app),
                                                       trusted_hosts=self.trusted_proxies))
        return SecurityHeaders(app)


FormHandler = Callable[[Request, FormData | None], Response]


def _reads_form(handler: FormHandler) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint that reads a POST's form (capped) on the event loop, then runs `handler`
    in the thread pool: the store and the templates never block the loop."""

    async def endpoint(request: Request) -> Response:
        form = None
        if request.method == "POST":
            form = await request.form(max_files=0, max_fields=FORM_FIELDS)
        return await run_in_threadpool(handler, request, form)

    return endpoint


async def _client_gone(request: Request, exc: Exception) -> Response:
    """A client that hung up mid-request is not an error of ours: no traceback, no log."""
    return Response(status_code=400)


def create_app(store: Store, settings: Settings, *,
               transport: Callable[[], Transport] | None = None,
               clock: Callable[[], float] = time.time, dev: bool = False,
               page_clock: Callable[[], float] = time.monotonic) -> Starlette:
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
    web = settings.web
    limits = RateLimits()
    cache = PageCache(settings.out_dir / "index.html", clock=page_clock)

    async def cached(key: str, build: Callable[[], CachedPage | None]) -> CachedPage | None:
        """A public page from the cache; a miss renders it in the thread pool (the store and
        the templates never block the event loop, and a hit never leaves it)."""
        return await cache.get(key, lambda: run_in_threadpool(build))
    make = transport or (lambda: make_transport(settings.email, settings.out_dir / "outbox"))

    def send_confirmation(email: str, topics: str) -> None:
        """On the mailer's thread: look the address up, and mail a link unless subscribed."""
        known = book.find(store, email)
        if known is None or known.status != book.ACTIVE:
            token = confirm_token(secret, email, topics, book.consent_state(known))
            _send_confirmation(make(), settings, email, link(f"confirm?token={token}"))

    mailer = Mailer(send_confirmation)

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

        def build() -> CachedPage:
            html = env.get_template("index.html").render(
                site=site, digests=store.digests(), long_date=long_date,
                feed_url=link("feed.xml"), atom_url=link("atom.xml"),
                subscribe={"action": link("subscribe"), "csrf": _TOKEN_SLOT},
                topic_feed_action=link("topics"))
            return CachedPage.of(html.encode(), HTML)

        answer = await cached("archive", build)
        assert answer is not None
        body = answer.body.replace(_TOKEN_SLOT.encode(), token.encode())
        return _with_csrf_cookie(Response(body, media_type=HTML), request, token)

    async def digest_page(request: Request) -> Response:
        name = request.path_params["name"].removesuffix(".html")

        def build() -> CachedPage | None:
            info = store.digest(name) if _storable(name) else None
            if info is None:
                return None
            views = [paper_view(p) for p in store.digest_papers(name)]
            names = [d.name for d in store.digests()]  # newest first
            at = names.index(name)
            newer = link(f"digests/{names[at - 1]}.html") if at > 0 else None
            older = link(f"digests/{names[at + 1]}.html") if at + 1 < len(names) else None
            return CachedPage.of("".join(render_page(
                site, info, views, settings.templates, history_base=link("papers/"), older=older,
                newer=newer, subscribe_url=link("#subscribe"))).encode(), HTML)

        answer = await cached(f"digest:{name}", build)
        if answer is None:
            return page(request, "Not found", f"There is no digest {name}.", 404)
        return _answer(request, answer)

    async def paper_page(request: Request) -> Response:
        key = request.path_params["key"]

        def build() -> CachedPage | None:
            found = store.paper_history(key) if _storable(key) else None
            if found is None:
                return None
            stored, seen = found
            html = env.get_template("paper.html").render(
                site=site, paper=paper_view(stored), sightings=[
                    {**asdict(s), "captured_at": f"{s.captured_at:%Y-%m-%d %H:%M}"} for s in seen],
                first_seen=f"{stored.first_seen:%Y-%m-%d}", digest=stored.digest,
                digest_url=link(f"digests/{stored.digest}.html") if stored.digest else "",
                chart=history_chart(seen), index_url=link(""), feed_url=link("feed.xml"),
                atom_url=link("atom.xml"))
            return CachedPage.of(html.encode(), HTML)

        answer = await cached(f"paper:{key}", build)
        if answer is None:
            return page(request, "Not found", "No paper has this key.", 404)
        return _answer(request, answer)

    def feed(kind: str) -> Callable[[Request], Awaitable[Response]]:
        def build() -> CachedPage:
            papers = store.feed_papers(settings.feed_size)
            rss, atom = build_feeds(site, papers)
            return _feed_page(kind, rss if kind == "rss" else atom, papers)

        async def serve(request: Request) -> Response:
            answer = await cached(f"feed:{kind}", build)
            assert answer is not None
            return _answer(request, answer)
        return serve

    def topic_feed(kind: str) -> Callable[[Request], Awaitable[Response]]:
        """`/topics/reasoning+diffusion-models.atom`: the newest papers matching those topics,
        by the same rule as email topics."""
        async def serve(request: Request) -> Response:
            topics = topics_from_slug(request.path_params["words"])
            if not topics:
                return page(request, "Not found", "Name some topics: /topics/reasoning.atom", 404)
            slug = topic_slug(topics)
            here = str(request.base_url).rstrip("/") if not site.base_url else site.base_url

            def build() -> CachedPage:
                papers = matching(store.feed_papers(settings.feed_size * TOPIC_FEED_WINDOW), topics,
                                  settings.feed_size)
                place = FeedPlace(f"topics/{slug}.xml", f"topics/{slug}.atom", f": {', '.join(topics)}",
                                  rss_url=f"{here}/topics/{slug}.xml",
                                  atom_url=f"{here}/topics/{slug}.atom")
                rss, atom = build_feeds(site, papers, place)
                return _feed_page(kind, rss if kind == "rss" else atom, papers)

            answer = await cached(f"topics:{here}:{slug}.{kind}", build)
            assert answer is not None
            return _answer(request, answer)
        return serve

    async def topic_feed_form(request: Request) -> Response:
        """The archive's "a feed for your topics" form: on to the topic feed's address."""
        topics = book.parse_topics(request.query_params.get("topics", "")[:500])
        if not topics:
            return RedirectResponse(link(""), status_code=303)
        return RedirectResponse(link(f"topics/{topic_slug(topics)}.atom"), status_code=303)

    def subscribe(request: Request, form: FormData | None) -> Response:
        if form is None or not _csrf_ok(request, form, secret):
            return page(request, "Please try again", "The form expired. Reload the page and "
                        "subscribe again.", 403)
        client = request.client.host if request.client else "unknown"
        if not limits.allow(web.subscribe_rate, "client", client):
            return page(request, "Too many requests", "Please wait a few minutes and try "
                        "again.", 429)
        try:
            email = book.normalize_address(str(form.get("email", "")))
        except SubscriberError:
            return page(request, "Check the address", "That does not look like an email "
                        "address. Go back and try again.", 400)
        topics = ", ".join(book.parse_topics(str(form.get("topics", ""))[:500]))
        # The same work and answer for every address, known or not: the lookup and the
        # email happen on the mailer's thread, after this answer (and at most once an
        # hour per address, however many clients ask).
        if limits.allow(web.confirm_rate, "address", email.casefold()):
            mailer.submit(email, topics)
        return page(request, "Check your inbox", f"If {email} can receive mail, a "
                    "confirmation link is on its way. It works for 48 hours.")

    def confirm(request: Request, form: FormData | None) -> Response:
        token = request.query_params.get("token", "")
        if form is not None:
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

    def unsubscribe(request: Request, form: FormData | None) -> Response:
        token = request.query_params.get("token", "")
        if form is not None:
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

    def preferences(request: Request, form: FormData | None) -> Response:
        token = request.query_params.get("token", "")
        if form is not None:
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
        heading = "Your topics"
        if form is not None:
            if not _csrf_ok(request, form, secret):
                return page(request, "Please try again", "The form expired. Reload the page.", 403)
            topics = ", ".join(book.parse_topics(str(form.get("topics", ""))[:500]))
            # An unticked checkbox is not posted: the hidden `others_shown` says the form had one
            # (a form from before the setting keeps it as it is).
            others = form.get("list_others") == "yes" if form.get("others_shown") else None
            current = book.set_topics(store, current.id, topics, list_others=others) or current
            heading = f"Saved: {', '.join(current.topics) or 'every new paper'}"
        return page(request, heading, "Only new papers whose title or abstract mentions "
                    "one of these are sent to you; leave it empty for every new paper.",
                    form={"action": link("preferences"), "button": "Save",
                          "fields": [("token", token), ("others_shown", "1")],
                          "topics": ", ".join(current.topics), "list_others": current.list_others})

    routes = [
        # The feeds first: readers poll them all day, and routes are tried in order.
        Route("/feed.xml", feed("rss")), Route("/atom.xml", feed("atom")),
        Route("/", archive), Route("/index.html", archive),
        Route("/digests/{name}", digest_page), Route("/papers/{key:path}", paper_page),
        Route("/topics", topic_feed_form),
        Route("/topics/{words}.xml", topic_feed("rss")), Route("/topics/{words}.atom", topic_feed("atom")),
        Route("/subscribe", _reads_form(subscribe), methods=["POST"]),
        Route("/confirm", _reads_form(confirm), methods=["GET", "POST"]),
        Route("/unsubscribe", _reads_form(unsubscribe), methods=["GET", "POST"]),
        Route("/preferences", _reads_form(preferences), methods=["GET", "POST"]),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        """Every unknown path: a styled page that leads back, not a bare "Not Found"."""
        return page(request, "Not found", "There is nothing at this address.", 404)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        # Confirmations asked for before a shutdown still go out (bounded: a dead mail
        # server must not hold the shutdown; the people can ask again).
        await run_in_threadpool(mailer.join, SHUTDOWN_WAIT)

    app = _App(web.max_body, web.trusted_proxies, routes=routes, lifespan=lifespan,
               exception_handlers={404: not_found, ClientDisconnect: _client_gone})
    app.state.secret = secret
    app.state.mailer = mailer
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
    return bool(nonce) and hmac.compare_digest(_bytes(mac), _bytes(_sign(nonce, secret)))


def _csrf_ok(request: Request, form: FormData, secret: str) -> bool:
    cookie, sent = request.cookies.get(CSRF_COOKIE, ""), str(form.get("csrf", ""))
    return _csrf_valid(cookie, secret) and hmac.compare_digest(_bytes(cookie), _bytes(sent))


def _bytes(text: str) -> bytes:
    """Any text as bytes: compare_digest refuses non-ASCII str, and forms may carry it."""
    return text.encode("utf-8", "surrogatepass")


def _storable(text: str) -> bool:
    """False for text no store can hold or match (PostgreSQL refuses NUL): a 404 at once."""
    return "\x00" not in text


def _sign(value: str, secret: str) -> str:
    return hmac.new(_bytes(secret), b"csrf:" + _bytes(value), hashlib.sha256).hexdigest()[:32]


def _with_csrf_cookie(response: Response, request: Request, token: str) -> Response:
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
    return response


class _Ready(Response):
    """A cached page's answer, its header lines encoded when the page was cached."""

    def __init__(self, status: int, raw_headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        self.status_code, self.body, self.background = status, body, None
        self.raw_headers = list(raw_headers)  # a copy: a cookie set later must not stick


def _answer(request: Request, cached: CachedPage) -> Response:
    """A cached page, or 304 when the client already holds these bytes."""
    if not_modified(request.headers.get("if-none-match"), request.headers.get("if-modified-since"),
                    cached):
        return _Ready(304, cached.raw_not_modified)
    return _Ready(cached.status, cached.raw_headers, cached.body)


def _feed_page(kind: str, body: bytes, papers: Sequence[StoredPaper]) -> CachedPage:
    """A feed with its validators (ETag, Last-Modified): a reader that has this version gets 304."""
    newest = max((p.first_seen for p in papers), default=datetime(1970, 1, 1, tzinfo=UTC))
    media = "application/rss+xml" if kind == "rss" else "application/atom+xml"
    return CachedPage.of(body, f"{media}; charset=utf-8", headers={
        "Last-Modified": format_datetime(newest, usegmt=True), "Cache-Control": "public, max-age=300"})


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
