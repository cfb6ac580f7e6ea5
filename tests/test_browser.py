"""A person in a real headless Chromium (Debian's, driven by Playwright): opens the archive,
subscribes, confirms from the email the SMTP server caught, receives the next digest,
unsubscribes from it, and receives nothing more. Screenshots go to out/screenshots/."""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from conftest import EXAMPLES, ROOT, SHARED_SNAPSHOTS, missing_service
from smtp_server import Mailbox, SmtpServer, content, free_port

from digest.config import EmailSettings, Settings
from digest.mail.deliver import Sender
from digest.mail.transport import SmtpTransport
from digest.models import DigestInfo, Paper, StoredPaper
from digest.pipeline import ingest, prepare
from digest.publish.render import PaperView, paper_view, render_email
from digest.publish.site import Site
from digest.sources.files import read_snapshot
from digest.store import Store, open_store
from digest.topics import topic_pattern
from digest.web.app import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = ROOT / "out" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser_path() -> str:
    if CHROMIUM is None:
        missing_service("needs Debian's chromium (apt-get install chromium); .ci/run installs it")
    return CHROMIUM


class _Server:
    def __init__(self, app: object, port: int) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,  # type: ignore[arg-type]
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Store, Settings, Mailbox, str, Any]]:
    box = Mailbox()
    with SmtpServer(box) as smtp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        settings = Settings(
            db_url=f"sqlite:///{tmp_path / 'browser.sqlite3'}", out_dir=tmp_path / "out",
            site=Site(base_url=base),
            email=EmailSettings(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_security="none",
                                from_address="papers@example.org", secret="browser-secret-" + "x" * 20))
        store = open_store(settings.db_url)
        now = datetime(2026, 11, 25, tzinfo=UTC)
        list(ingest(store, settings, prepare([EXAMPLES / "2026-03-11.txt"], None, now), now))
        app = create_app(store, settings)
        with _Server(app, port):
            yield store, settings, box, base, app.state.mailer
        store.close()


def _send(store: Store, settings: Settings, snapshot: Path) -> int:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    list(ingest(store, settings, prepare([snapshot], None, now), now))
    return Sender(store, settings, SmtpTransport(settings.email), sleep=lambda _: None).run().sent


def test_subscribe_confirm_receive_unsubscribe(
        browser_path: str, site: tuple[Store, Settings, Mailbox, str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    store, settings, box, base, mailer = site
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(base + "/")
        assert page.inner_text("h1") == "Archive"
        page.fill("#email", "reader@example.org")
        page.fill("#topics", "")
        page.click("button[type=submit]")
        assert page.inner_text("h1") == "Check your inbox"

        mailer.join()  # the confirmation leaves from the app's mail thread
        (confirmation,) = box.parsed()
        link = re.search(r"http://127\.0\.0\.1:\d+/confirm\?token=\S+", content(confirmation))
        assert link is not None
        page.goto(link.group(0))
        page.click("button[type=submit]")
        assert page.inner_text("h1") == "You are subscribed"

        assert _send(store, settings, EXAMPLES / "2026-03-12.txt") == 1
        digest = box.to("reader@example.org")[-1]
        assert digest["Subject"].startswith("Daily Papers, Mar 12: 3 new papers · ")
        html = content(digest.get_payload()[1])
        email_file = settings.out_dir / "email.html"
        email_file.parent.mkdir(parents=True, exist_ok=True)
        email_file.write_text(html)
        unsubscribe = re.search(r'href="(http://127\.0\.0\.1:\d+/unsubscribe\?token=[^"]+)"', html)
        assert unsubscribe is not None
        page.goto(unsubscribe.group(1).replace("&amp;", "&"))
        assert page.inner_text("h1") == "Unsubscribe"
        page.click("button[type=submit]")
        assert page.inner_text("h1") == "Unsubscribed"

        assert _send(store, settings, EXAMPLES / "2026-03-13.txt") == 0
        assert len(box.to("reader@example.org")) == 2  # the confirmation and one digest

        # The README's screenshots: light and dark, phone and desktop (copied to docs/screenshots/).
        for scheme in ("light", "dark"):
            for width, size in ((390, "phone"), (1280, "desktop")):
                label = size if scheme == "light" else f"{size}-dark"
                context = browser.new_context(color_scheme=scheme,  # type: ignore[arg-type]
                                              viewport={"width": width, "height": 900})
                shot = context.new_page()
                shot.goto(base + "/")
                shot.screenshot(path=str(SHOTS / f"archive-{label}.png"), full_page=True)
                shot.goto(base + "/digests/2026-03-12.html")
                shot.screenshot(path=str(SHOTS / f"digest-{label}.png"), full_page=True)
                shot.goto(email_file.as_uri())
                shot.screenshot(path=str(SHOTS / f"email-{label}.png"), full_page=True)
                context.close()
        browser.close()
    for name in ("archive", "digest", "email"):
        for label in ("phone", "desktop", "phone-dark", "desktop-dark"):
            assert (SHOTS / f"{name}-{label}.png").stat().st_size > 5000


def _day(papers: list[Paper], n: int) -> list[PaperView]:
    """A day of `n` papers from the real captures (repeated, titles marked, past their count)."""
    now = datetime(2026, 3, 13, tzinfo=UTC)
    day = []
    for i in range(n):
        paper = papers[i % len(papers)]
        if i >= len(papers):
            paper = replace(paper, title=f"{paper.title} (again, {i // len(papers) + 1})")
        day.append(paper_view(StoredPaper(key=f"k{i}", paper=paper, first_seen=now,
                                          digest="2026-03-13", position=i + 1)))
    return day


@pytest.mark.skipif(not SHARED_SNAPSHOTS.is_dir(), reason="../shared/snapshots not present")
def test_email_heights_at_600_px(browser_path: str) -> None:
    """Skimmable: a 26-paper email is at most ~6,000 px tall at 600 px; a 121-paper day lists
    every title within the size budget. Prints the heights for the README."""
    from playwright.sync_api import sync_playwright

    now = datetime(2026, 3, 13, tzinfo=UTC)
    papers = [p for path in sorted(SHARED_SNAPSHOTS.glob("*.txt"))
              for p in (n.paper for n in read_snapshot(path, None, now).listings)]
    heights = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=ARGS)
        page = browser.new_page(viewport={"width": 600, "height": 800})
        for n in (6, 26, 121):
            views = _day(papers, n)
            body = render_email(Site(base_url="https://papers.example.org"),
                                DigestInfo("2026-03-13", now, n), views)
            page.set_content(body.html)
            heights[n] = page.evaluate("document.documentElement.scrollHeight")
            listed = page.locator("ol.contents li a").count()
            assert listed == n, f"{n}-paper day lists {listed} titles"
        browser.close()
    print(f"email heights at 600 px: {heights}")
    assert heights[26] <= 6000 and heights[6] < heights[26] < heights[121]


def _axe_script() -> str:
    """axe-core, as the axe-playwright-python package ships it (from PyPI, no download)."""
    import axe_playwright_python

    return str(Path(axe_playwright_python.__file__).parent / "axe.min.js")


def test_accessibility_in_both_colour_schemes(
        browser_path: str, site: tuple[Store, Settings, Mailbox, str, Any]) -> None:
    """axe-core finds no violation (contrast included) on every kind of page, light and dark;
    the history table fits a 320 px screen."""
    from playwright.sync_api import sync_playwright

    store, settings, _, base, _ = site
    key = store.digest_papers("2026-03-11")[0].key
    pages = ["/", "/digests/2026-03-11.html", f"/papers/{key}", "/confirm?token=forged",
             "/unsubscribe?token=forged", "/preferences?token=forged", "/no/such/page"]
    email = settings.out_dir / "digests" / "2026-03-11.email.html"
    topic_email = settings.out_dir / "topic-email.html"  # with <mark> highlights
    views = [paper_view(p) for p in store.digest_papers("2026-03-11")]
    pattern = topic_pattern(("attention",))
    assert pattern is not None
    topic_email.write_text(render_email(settings.site, store.digests()[-1], [
        v for v in views if pattern.search(v.title + " " + v.abstract)], topics=("attention",),
        highlight=pattern).html)
    assert "<mark" in topic_email.read_text()
    problems = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=ARGS)
        for scheme in ("light", "dark"):
            context = browser.new_context(bypass_csp=True, color_scheme=scheme,  # type: ignore[arg-type]
                                          viewport={"width": 390, "height": 900})
            page = context.new_page()
            for url in [*(base + path for path in pages), email.as_uri(), topic_email.as_uri()]:
                page.goto(url)
                page.add_script_tag(path=_axe_script())
                result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
                problems += [f"{scheme} {url}: {v['id']}: {v['nodes'][0]['target']} "
                             f"{v['nodes'][0].get('failureSummary', '')[:160]}"
                             for v in result["violations"]]
            page.set_viewport_size({"width": 320, "height": 900})
            page.goto(base + f"/papers/{key}")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"the paper page scrolls sideways by {overflow} px at 320 px"
            context.close()
        browser.close()
    assert not problems, "\n".join(problems)
