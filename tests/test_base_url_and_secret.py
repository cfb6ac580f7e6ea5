"""Never send or serve broken links: a public base URL for real sends, one long secret shared
by `digest send` and `digest serve`, and internationalised addresses in confirmation mail."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES
from smtp_server import Mailbox, SmtpServer
from starlette.testclient import TestClient

from digest.cli.main import main
from digest.config import EmailSettings, Settings
from digest.errors import ConfigError
from digest.mail import subscribers as book
from digest.mail.transport import SmtpTransport
from digest.pipeline import make_sender
from digest.publish.site import Site
from digest.store import open_store
from digest.web.app import create_app

SECRET = "links-test-secret-0123456789abcdefghij"
NO_BASE_URL = ("site.base_url: not set, so emails get relative links and no web unsubscribe or "
               "preferences link — set [site] base_url (or DIGEST_SITE_BASE_URL) to the public URL, "
               "e.g. https://papers.example.org")
SHORT = ("error: DIGEST_SECRET: only 2 characters; links signed with a short secret can be forged "
         "(use 32 or more) — make one with: python -c 'import secrets; "
         "print(secrets.token_urlsafe(32))'\n")


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, SmtpServer]]:
    box = Mailbox()
    with SmtpServer(box) as server:
        yield box, server


def settle(client: TestClient) -> None:
    """Wait until the app has sent the confirmation emails it was asked for."""
    client.app.state.mailer.join()  # type: ignore[attr-defined]


def test_smtp_send_without_a_base_url_is_refused_and_sends_nothing(
        isolated: Path, smtp: tuple[Mailbox, SmtpServer]) -> None:
    box, server = smtp
    env = {**server.env(), "DIGEST_SECRET": SECRET}
    invoke("subscribers", "add", "ada@example.org")
    invoke("ingest", str(EXAMPLES / "2026-03-11.txt"))
    code, out, err = invoke("send", env=env)
    assert (code, out, err) == (2, "", f"error: {NO_BASE_URL}\n")
    assert box.messages == [] and box.rcpt_order == []
    store = open_store("sqlite:///digest.sqlite3")
    assert store.delivery_counts() == {"pending": 1}
    store.close()
    # config check says so before any send; the ingest --send and run paths refuse too.
    assert invoke("config", "check", env=env)[0] == 2
    assert invoke("config", "check", env=env)[2] == f"error: {NO_BASE_URL}\n"
    # A preview may go on, with the warning.
    code, out, err = invoke("send", "--to", "me@example.org", "--digest", "2026-03-11", env=env)
    assert code == 0 and err == f"warning: {NO_BASE_URL}\n" and len(box.to("me@example.org")) == 1
    # With the base URL, the same send goes out with absolute links and a web unsubscribe.
    code, out, _ = invoke("send", env={**env, "DIGEST_SITE_BASE_URL": "https://papers.example.org"})
    assert (code, out) == (0, "1 sent, 0 skipped, 0 failed\n")
    (message,) = box.to("ada@example.org")
    assert "https://papers.example.org/unsubscribe?token=" in message["List-Unsubscribe"]


def test_outbox_without_a_base_url_warns_and_config_check_says_so(isolated: Path) -> None:
    code, out, _ = invoke("config", "check")
    assert code == 0 and out.endswith(f"warning: {NO_BASE_URL}\nok\n")
    code, out, _ = invoke("config", "check", env={"DIGEST_SITE_BASE_URL": "https://p.example.org"})
    assert code == 0 and "warning" not in out


def test_make_sender_refuses_smtp_without_a_base_url(tmp_path: Path) -> None:
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'd.sqlite3'}",
                        email=EmailSettings(smtp_host="127.0.0.1", secret=SECRET))
    store = open_store(settings.db_url)
    with pytest.raises(ConfigError, match="site.base_url: not set"):
        make_sender(store, settings)
    assert make_sender(store, settings, preview=True) is not None
    store.close()


def test_a_short_secret_is_refused_everywhere(isolated: Path, tmp_path: Path) -> None:
    env = {"DIGEST_SECRET": "ab"}
    assert invoke("config", "check", env=env) == (2, "", SHORT)
    assert invoke("send", env=env) == (2, "", SHORT)
    assert invoke("serve", env=env) == (2, "", SHORT)
    store = open_store(f"sqlite:///{tmp_path / 'd.sqlite3'}")
    short = Settings(email=EmailSettings(secret="x" * 31, smtp_host="127.0.0.1"),
                     site=Site(base_url="https://papers.example.org"))
    with pytest.raises(ConfigError, match="only 31 characters"):
        create_app(store, short)
    with pytest.raises(ConfigError, match="only 31 characters"):
        make_sender(store, short)
    store.close()


def test_serve_needs_the_secret_unless_dev(isolated: Path, tmp_path: Path) -> None:
    code, out, err = invoke("serve")
    assert (code, out) == (2, "")
    assert err == ("error: DIGEST_SECRET: not set, and the web app signs its links and forms with "
                   "it (digest serve --dev: a throwaway key) — make one with: python -c 'import "
                   "secrets; print(secrets.token_urlsafe(32))'\n")
    store = open_store(f"sqlite:///{tmp_path / 'd.sqlite3'}")
    with pytest.raises(ConfigError, match="DIGEST_SECRET: not set"):
        create_app(store, Settings())  # no SMTP host either: still refused
    app = create_app(store, Settings(), dev=True)
    assert len(app.state.secret) >= 32
    # The app and `digest send` share the secret: a link signed by one works in the other.
    shared = create_app(store, Settings(email=EmailSettings(secret=SECRET)))
    assert shared.state.secret == SECRET
    store.close()


def test_confirmation_mail_to_an_international_address(tmp_path: Path,
                                                       smtp: tuple[Mailbox, SmtpServer]) -> None:
    box, server = smtp
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'w.sqlite3'}", out_dir=tmp_path / "out",
                        site=Site(base_url="https://papers.example.org"),
                        email=EmailSettings(smtp_host="127.0.0.1", smtp_port=server.port,
                                            smtp_security="none", secret=SECRET,
                                            from_address="papers@example.org"))
    store = open_store(settings.db_url)
    app = create_app(store, settings, transport=lambda: SmtpTransport(settings.email))
    with TestClient(app, base_url="https://testserver") as client:
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text).group(1)  # type: ignore[union-attr]
        answer = client.post("/subscribe", data={"email": "josé@example.org", "csrf": token})
        assert answer.status_code == 200
        settle(client)
    (raw,) = [raw for _, rcpts, raw in box.messages if rcpts == ["josé@example.org"]]
    assert "\r\nTo: josé@example.org\r\n".encode() in raw and b"=?utf-8?" not in raw.lower()
    message = message_from_bytes(raw, policy=policy.default)
    assert "confirm?token=" in message.get_content()  # type: ignore[attr-defined]
    assert book.find(store, "josé@example.org") is None  # nothing stored until confirmed
    store.close()


def test_ingest_send_with_bad_mail_settings_ingests_nothing(isolated: Path) -> None:
    """`ingest --send` goes through the same cycle as `run`: the mail settings are checked
    before anything is ingested, so the refusal leaves the store as it was."""
    env = {"DIGEST_EMAIL_SMTP_HOST": "127.0.0.1", "DIGEST_SECRET": SECRET}
    code, out, err = invoke("ingest", "--send", str(EXAMPLES / "2026-03-11.txt"), env=env)
    assert (code, out, err) == (2, "", f"error: {NO_BASE_URL}\n")
    store = open_store("sqlite:///digest.sqlite3")
    assert store.counts()["snapshots"] == 0
    store.close()
