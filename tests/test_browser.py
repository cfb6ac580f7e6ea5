"""A person in a real headless Chromium (Debian's, driven by Playwright): opens the archive,
subscribes, confirms from the email the SMTP server caught, receives the next digest,
unsubscribes from it, and receives nothing more. Screenshots go to out/screenshots/."""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from conftest import EXAMPLES, ROOT
from smtp_server import Mailbox, SmtpServer, content, free_port

from digest.config import EmailSettings, Settings
from digest.deliver import Sender
from digest.pipeline import ingest, prepare
from digest.render import Site
from digest.store import Store, open_store
from digest.transport import SmtpTransport
from digest.web import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = ROOT / "out" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser_path() -> str:
    if CHROMIUM is None:
        reason = "needs Debian's chromium (apt-get install chromium); .ci/run installs it"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
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
        list(ingest(store, settings, prepare(store, [EXAMPLES / "2026-03-11.txt"], None, now), now))
        app = create_app(store, settings)
        with _Server(app, port):
            yield store, settings, box, base, app.state.mailer
        store.close()


def _send(store: Store, settings: Settings, snapshot: Path) -> int:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    list(ingest(store, settings, prepare(store, [snapshot], None, now), now))
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
        assert digest["Subject"] == "Daily Papers, Mar 12: 3 new papers"
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

        for width, label in ((390, "phone"), (1280, "desktop")):
            shot = browser.new_page(viewport={"width": width, "height": 900})
            shot.goto(base + "/")
            shot.screenshot(path=str(SHOTS / f"archive-{label}.png"), full_page=True)
            shot.goto(base + "/digests/2026-03-12.html")
            shot.screenshot(path=str(SHOTS / f"digest-{label}.png"), full_page=True)
            shot.goto(email_file.as_uri())
            shot.screenshot(path=str(SHOTS / f"email-{label}.png"), full_page=True)
            shot.close()
        browser.close()
    for name in ("archive", "digest", "email"):
        for label in ("phone", "desktop"):
            assert (SHOTS / f"{name}-{label}.png").stat().st_size > 5000
