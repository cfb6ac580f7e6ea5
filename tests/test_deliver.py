"""Delivery through a real SMTP server (aiosmtpd on 127.0.0.1): content, headers, topics,
exactly-once across re-runs and crashes, retries, refusals, dropped connections."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from html import escape
from pathlib import Path

import pytest
from conftest import EXAMPLES, entry, page
from conftest import MAIL_NOW as NOW
from conftest import MAIL_SECRET as SECRET
from smtp_server import Mailbox, SmtpServer, content

from digest.config import EmailSettings, Settings
from digest.errors import ConfigError
from digest.mail import subscribers as book
from digest.mail.deliver import Sender
from digest.mail.tokens import read_unsubscribe_token
from digest.mail.transport import OutboxTransport, SmtpTransport
from digest.pipeline import ingest, make_sender, prepare
from digest.publish.render import paper_view
from digest.publish.site import Site
from digest.store import Store, open_store

HEADERS = ["From", "To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe",
           "List-Unsubscribe-Post", "Auto-Submitted", "Precedence", "MIME-Version",
           "Content-Type"]


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, SmtpServer]]:
    box = Mailbox()
    with SmtpServer(box) as server:
        yield box, server


def make_settings(tmp_path: Path, port: int, **email: object) -> Settings:
    options: dict[str, object] = dict(
        smtp_host="127.0.0.1", smtp_port=port, smtp_security="none",
        from_name="Daily Papers", from_address="papers@example.org", secret=SECRET)
    options.update(email)
    return Settings(db_url=f"sqlite:///{tmp_path / 'd.sqlite3'}", out_dir=tmp_path / "out",
                    site=Site(base_url="https://papers.example.org"),
                    email=EmailSettings(**options))  # type: ignore[arg-type]


def ingest_files(store: Store, settings: Settings, *paths: Path) -> None:
    list(ingest(store, settings, prepare(paths, None, NOW), NOW))


def sender(store: Store, settings: Settings, **options: object) -> Sender:
    sleeps: list[float] = []
    return Sender(store, settings, SmtpTransport(settings.email), now=lambda: NOW,
                  sleep=sleeps.append, delays=(0.01, 0.02, 0.04), **options)  # type: ignore[arg-type]


@pytest.fixture
def world(tmp_path: Path, mailbox: tuple[Mailbox, SmtpServer]) -> Iterator[tuple[Store, Settings, Mailbox]]:
    box, server = mailbox
    settings = make_settings(tmp_path, server.port)
    store = open_store(settings.db_url)
    yield store, settings, box
    store.close()


def test_message_content_and_exact_headers(world: tuple[Store, Settings, Mailbox]) -> None:
    store, settings, box = world
    book.add(store, "ada@example.org", "Ada Lovelace")
    ingest_files(store, settings, EXAMPLES / "2026-03-11.txt")
    summary = sender(store, settings).run()
    assert (summary.sent, summary.failed, summary.skipped) == (1, 0, 0)
    (raw,) = [raw for _, _, raw in box.messages]
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    message = message_from_bytes(raw, policy=policy.default)
    assert list(message.keys()) == HEADERS
    assert message["From"] == "Daily Papers <papers@example.org>"
    assert message["To"] == "Ada Lovelace <ada@example.org>"
    # The count, then as much of the first title as fits in 78 characters.
    assert message["Subject"] == "Daily Papers, Mar 11: 7 new papers · Tidal Attention: Long-Context…"
    assert message["Auto-Submitted"] == "auto-generated" and message["Precedence"] == "bulk"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == "Daily Papers <daily-papers.example.org>"
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.get_payload()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert "Tidal Attention" in content(text) and "Tidal Attention" in content(html)
    assert 'style="' in content(html)  # CSS inlined
    assert "https://papers.example.org/digests/2026-03-11.html" in content(html)
    # The List-Unsubscribe header arrives unencoded, with a token the web app can verify.
    header = raw.split(b"\r\nList-Unsubscribe: ", 1)[1].split(b"\r\n", 1)[0].decode()
    assert "=?" not in header
    url = header.split(", ")[1].strip("<>")
    assert url.startswith("https://papers.example.org/unsubscribe?token=")
    token = url.split("token=", 1)[1]
    subscriber = book.find(store, "ada@example.org")
    assert subscriber and read_unsubscribe_token(SECRET, token) == subscriber.id
    assert read_unsubscribe_token(SECRET, token[:-2] + "xx") is None
    assert read_unsubscribe_token("another secret", token) is None
    assert url in content(html) and url in content(text)


def test_long_list_unsubscribe_url_is_not_encoded(tmp_path: Path,
                                                  mailbox: tuple[Mailbox, SmtpServer]) -> None:
    box, server = mailbox
    settings = make_settings(tmp_path, server.port)
    long_base = "https://papers.example.org/" + "a-very-long-path-segment/" * 6
    settings = Settings(db_url=settings.db_url, out_dir=settings.out_dir,
                        site=Site(base_url=long_base.rstrip("/")), email=settings.email)
    store = open_store(settings.db_url)
    book.add(store, "ada@example.org")
    ingest_files(store, settings, EXAMPLES / "2026-03-11.txt")
    sender(store, settings).run()
    raw = box.messages[0][2]
    header = raw.split(b"\r\nList-Unsubscribe: ", 1)[1].split(b"\r\n", 1)[0]
    assert len(header) > 200 and b"=?" not in header and long_base.encode() in header
    store.close()


def test_topics_filter_highlight_and_skip_empty_matches(world: tuple[Store, Settings, Mailbox]) -> None:
    store, settings, box = world
    book.add(store, "all@example.org")
    book.add(store, "attn@example.org", topics="attention, speech recognition")
    book.add(store, "none@example.org", topics="quantum chromodynamics")
    ingest_files(store, settings, EXAMPLES / "2026-03-11.txt")
    summary = sender(store, settings).run()
    assert (summary.sent, summary.skipped) == (2, 1)
    assert box.to("none@example.org") == []
    (attn,) = box.to("attn@example.org")
    assert attn["Subject"] == "Daily Papers, Mar 11: 2 new papers · Tidal Attention: Long-Context…"
    text, html = (content(part) for part in attn.get_payload())
    assert re.search(r"Tidal <mark[^>]*>Attention</mark>", html)
    assert re.search(r"<mark[^>]*>speech recognition</mark>", html)
    assert "Lanternfish" not in html and "Lanternfish" not in text
    assert "Tidal *Attention*" in text
    assert "https://github.com/example-lab/tidal-attention" in text  # URLs never highlighted
    assert "2 of 7 new papers match your topics (attention, speech recognition)" in text
    # Numbered as shown (1., 2.), not by their places in the full digest; each with its topic.
    assert re.search(r"^1\. Tidal \*Attention\*", text, re.M) and re.search(r"^2\. ", text, re.M)
    assert re.search(r"\[attention\]", text, re.I) and re.search(r"\[speech recognition\]", text, re.I)
    assert len(box.to("all@example.org")) == 1
    assert store.delivery_counts() == {"sent": 2, "skipped": 1}


def test_topic_subscriber_can_also_get_the_other_titles(world: tuple[Store, Settings, Mailbox]) -> None:
    """Issue 11: with list_others on, the matched cards, then the other new papers' titles
    only (not the matched ones), each linking to its card in the web copy; without it, not."""
    store, settings, box = world
    book.add(store, "plain@example.org", topics="attention, speech recognition")
    book.add(store, "rest@example.org", topics="attention, speech recognition", list_others=True)
    book.add(store, "all@example.org", list_others=True)  # no topics: the setting changes nothing
    ingest_files(store, settings, EXAMPLES / "2026-03-11.txt")
    assert sender(store, settings).run().sent == 3
    views = [paper_view(p) for p in store.digest_papers("2026-03-11")]
    web = "https://papers.example.org/digests/2026-03-11.html"
    (plain,), (rest,), (everyone,) = (box.to(a) for a in ("plain@example.org", "rest@example.org",
                                                          "all@example.org"))
    plain_text, plain_html = (content(part) for part in plain.get_payload())
    rest_text, rest_html = (content(part) for part in rest.get_payload())
    assert rest["Subject"] == plain["Subject"]
    matched = [v for v in views if re.search(r"attention|speech recognition", v.title + v.abstract, re.I)]
    others = [v for v in views if v not in matched]
    assert len(matched) == 2 and len(others) == 5
    for body in (plain_text, plain_html, content(everyone.get_payload()[0])):
        assert "Also new today" not in body
    assert "Also new today: 5 other new papers, not matching your topics" in rest_text
    assert "5 other new papers, not matching your topics:" in rest_html
    also_text = rest_text.split("Also new today", 1)[1]
    also_html = rest_html.split("Also new today", 1)[1]
    for view in others:
        assert f" - {view.title}\n   {web}#p{view.position}\n" in also_text
        title = re.escape(escape(view.title, quote=False))
        assert re.search(rf'<a href="{re.escape(web)}#p{view.position}"[^>]*>{title}</a>', also_html)
        assert view.title not in plain_text and view.title not in rest_text.split("Also new today")[0]
    for view in matched:
        assert view.title not in also_text and f"#p{view.position}\"" not in also_html
    # The matched part is the same as without the setting.
    assert rest_text.split("Also new today")[0] == plain_text.split("--\n")[0]


def test_exactly_once_across_reruns_and_planning_at_digest_time(
        world: tuple[Store, Settings, Mailbox]) -> None:
    store, settings, box = world
    book.add(store, "early@example.org")
    ingest_files(store, settings, EXAMPLES / "2026-03-11.txt")
    book.add(store, "late@example.org")  # subscribed after the Mar 11 digest was made
    ingest_files(store, settings, EXAMPLES / "2026-03-12.txt")
    first = sender(store, settings).run()
    second = sender(store, settings).run()
    assert (first.sent, second.sent) == (3, 0)
    assert [m["Subject"].split(" · ")[0] for m in box.to("early@example.org")] == [
        "Daily Papers, Mar 11: 7 new papers", "Daily Papers, Mar 12: 3 new papers"]
    assert [m["Subject"].split(" · ")[0] for m in box.to("late@example.org")] == [
        "Daily Papers, Mar 12: 3 new papers"]


def test_4xx_is_retried_with_the_same_message_id(world: tuple[Store, Settings, Mailbox]) -> None:
    store, settings, box = world
    book.add(store, "busy@example.org")
    box.script["busy@example.org"] = ["451 4.3.0 try again later", "452 4.2.2 mailbox busy"]
    ingest_files(store, settings, EXAMPLES / "2026-03-11.txt")
    summary = sender(store, settings).run()
    assert summary.sent == 1 and box.attempts["busy@example.org"] == 3
    assert len(box.to("busy@example.org")) == 1


def test_5xx_fails_one_and_the_others_go_on(world: tuple[Store, Settings, Mailbox]) -> None:
    store, settings, box = world
    for name in ("a", "bad", "c"):
        book.add(store, f"{name}@example.org")
    box.script["bad@example.org"] = ["550 5.1.1 no such user"]
    ingest_files(store, settings, EXAMPLES / "2026-03-11.txt")
    summary = sender(store, settings).run()
    assert (summary.sent, summary.failed, summary.ok) == (2, 1, False)
    assert box.attempts["bad@example.org"] == 1
    assert store.delivery_counts() == {"sent": 2, "failed": 1}
    assert sender(store, settings).run().sent == 0  # a failure is final, not retried


def test_drop_before_the_message_is_retried_drop_after_is_unknown(
        world: tuple[Store, Settings, Mailbox]) -> None:
    store, settings, box = world
    book.add(store, "flaky@example.org")
    book.add(store, "lost@example.org")
    book.add(store, "fine@example.org")
    box.script["flaky@example.org"] = ["drop-rcpt"]
    box.script["lost@example.org"] = ["drop-after-data"]
    ingest_files(store, settings, EXAMPLES / "2026-03-11.txt")
    summary = sender(store, settings).run()
    assert (summary.sent, summary.unknown, summary.failed) == (2, 1, 0)
    assert len(box.to("flaky@example.org")) == 1 and len(box.to("fine@example.org")) == 1
    assert box.to("lost@example.org") == []
    lost = next(raw for raw in box.data_seen if b"\r\nTo: lost@example.org\r\n" in raw)
    lost_id = lost.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0]
    assert sender(store, settings).run().sent == 0  # unknown is not resent blindly
    again = sender(store, settings).run(retry_unknown=True)
    assert again.sent == 1
    (resent,) = box.to("lost@example.org")
    assert resent["Message-ID"] == lost_id.decode()


def test_hostile_names_and_titles_cannot_inject_headers(world: tuple[Store, Settings, Mailbox],
                                                        tmp_path: Path) -> None:
    store, settings, box = world
    settings = Settings(db_url=settings.db_url, out_dir=settings.out_dir,
                        site=Site(title="Papers =?UTF-8?Q?=0A?=Bcc: evil@example.org",
                                  base_url="https://papers.example.org"), email=settings.email)
    book.add(store, "zoë@example.org", "Zoë \r\nBcc: evil@example.org <x>")
    book.add(store, "script@example.org", '<script>alert(1)</script> "Q" =?UTF-8?Q?=0A?=Cc: a@b.c')
    path = tmp_path / "2026-03-13.txt"
    path.write_text(page(entry('<script>alert("t")</script> & =?UTF-8?Q?=0A?=Bcc: x@example.org')))
    ingest_files(store, settings, path)
    assert sender(store, settings).run().sent == 2
    assert all(rcpts == [rcpt] for _, rcpts, _ in box.messages for rcpt in rcpts)
    assert sorted(r for _, rcpts, _ in box.messages for r in rcpts) == [
        "script@example.org", "zoë@example.org"]
    for message in box.parsed():
        assert list(message.keys()) == HEADERS
        assert len(message["To"].addresses) == 1 and "\n" not in message["Subject"]
        assert message["To"].addresses[0].addr_spec in ("zoë@example.org", "script@example.org")
        html = content(message.get_payload()[1])
        assert "<script>" not in html and "&lt;script&gt;" in html
        assert message["Subject"] == "Papers = ?UTF-8?Q?=0A?=Bcc: evil@example.org, Mar 13: 1 new paper"
    zoe = box.to("zoë@example.org")[0]
    assert zoe["To"].addresses[0].display_name == "Zoë Bcc: evil@example.org <x>"


def test_unsubscribing_during_a_run_stops_their_send(world: tuple[Store, Settings, Mailbox]) -> None:
    store, settings, box = world
    for n in range(1, 5):
        book.add(store, f"u{n}@example.org")
    ingest_files(store, settings, EXAMPLES / "2026-03-11.txt")

    def unsubscribe_u3(count: int) -> None:
        if count == 1:
            book.set_status(store, "u3@example.org", book.UNSUBSCRIBED)

    box.on_data = lambda n: unsubscribe_u3(n)  # type: ignore[func-returns-value]
    summary = sender(store, settings).run()
    assert (summary.sent, summary.skipped) == (3, 1)
    assert box.to("u3@example.org") == []
    book.add(store, "u3@example.org")  # explicit re-subscription
    assert sender(store, settings).run().sent == 0  # but not to the old digest


def test_flood_guard_holds_and_release_sends(world: tuple[Store, Settings, Mailbox],
                                             tmp_path: Path) -> None:
    store, settings, box = world
    settings = Settings(db_url=settings.db_url, out_dir=settings.out_dir, site=settings.site,
                        email=EmailSettings(**{**settings.email.__dict__, "max_new": 5}))
    book.add(store, "ada@example.org")
    ingest_files(store, settings, EXAMPLES / "2026-03-11.txt")  # 7 new > max_new 5
    summary = sender(store, settings).run()
    assert summary.sent == 0 and summary.held[0][0] == "2026-03-11"
    assert "7 new papers is more than max_new (5)" in summary.held[0][1]
    with store.transaction() as tx:
        assert tx.papers.release_digest("2026-03-11")
    assert sender(store, settings).run().sent == 1


def test_format_change_looks_like_a_flood(world: tuple[Store, Settings, Mailbox],
                                          tmp_path: Path) -> None:
    store, settings, _ = world
    first = tmp_path / "2026-03-12.txt"
    first.write_text(page(*(entry(f"Paper {i}") for i in range(10)), header="Mar 12"))
    renamed = tmp_path / "2026-03-13.txt"
    renamed.write_text(page(*(entry(f"[v2] Paper {i} (preprint)") for i in range(10))))
    ingest_files(store, settings, first, renamed)
    (held,) = [d for d in store.digests() if d.held_reason]
    assert held.name == "2026-03-13" and "did the source change its format?" in held.held_reason


def test_smtp_needs_a_secret_outbox_does_not(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, 25, secret=None)
    store = open_store(settings.db_url)
    with pytest.raises(ConfigError, match="DIGEST_SECRET: not set"):
        make_sender(store, settings)
    outbox = Settings(db_url=settings.db_url, out_dir=tmp_path / "out",
                      email=EmailSettings(secret=None))
    book.add(store, "ada@example.org")
    ingest_files(store, outbox, EXAMPLES / "2026-03-11.txt")
    summary = make_sender(store, outbox).run()
    assert summary.sent == 1
    (eml,) = (tmp_path / "out/outbox/2026-03-11").glob("*.eml")
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert message["List-Unsubscribe"] == "<mailto:digest@paper-digest.invalid?subject=unsubscribe>"
    assert "List-Unsubscribe-Post" not in message
    assert isinstance(make_sender(store, outbox).transport, OutboxTransport)
    store.close()


def test_server_down_stops_the_run_and_keeps_deliveries_pending(tmp_path: Path) -> None:
    from smtp_server import free_port

    settings = make_settings(tmp_path, free_port())  # nothing listens there
    store = open_store(settings.db_url)
    book.add(store, "ada@example.org")
    book.add(store, "bob@example.org")
    ingest_files(store, settings, EXAMPLES / "2026-03-11.txt")
    summary = sender(store, settings).run()
    assert summary.stopped and "unreachable" in summary.stopped and not summary.ok
    assert store.delivery_counts() == {"pending": 2}
    store.close()


def _send_env(settings: Settings, server: SmtpServer) -> dict[str, str]:
    return {**os.environ, **server.env(), "DIGEST_DB": settings.db_url,
            "DIGEST_OUT": str(settings.out_dir), "DIGEST_SECRET": SECRET,
            "DIGEST_EMAIL_FROM": "Daily Papers <papers@example.org>",
            "DIGEST_SITE_BASE_URL": "https://papers.example.org"}


def _planned(tmp_path: Path, server: SmtpServer, n: int) -> tuple[Settings, Store, list[str]]:
    """A store with one digest planned for n subscribers u01@..., and their addresses."""
    settings = make_settings(tmp_path, server.port)
    store = open_store(settings.db_url)
    addresses = [f"u{i:02d}@example.org" for i in range(1, n + 1)]
    for address in addresses:
        book.add(store, address)
    ingest_files(store, settings, EXAMPLES / "2026-03-11.txt")
    return settings, store, addresses


def test_crash_mid_send_then_rerun_gives_everyone_exactly_one_copy(
        tmp_path: Path, mailbox: tuple[Mailbox, SmtpServer]) -> None:
    box, server = mailbox
    settings, store, addresses = _planned(tmp_path, server, 10)
    child: dict[str, subprocess.Popen[bytes]] = {}
    killed = threading.Event()

    def kill_on_fifth(count: int) -> str | None:
        if count == 5:  # the 5th message is in, its 250 never goes out: kill -9 the sender
            os.kill(child["p"].pid, signal.SIGKILL)
            killed.set()
            return "451 4.3.0 never delivered"
        return None

    box.on_data = kill_on_fifth
    env = _send_env(settings, server)
    child["p"] = subprocess.Popen([sys.executable, "-m", "digest", "send"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    child["p"].wait(timeout=60)
    assert killed.is_set() and child["p"].returncode == -signal.SIGKILL
    assert len(box.messages) == 4
    box.on_data = None
    rerun = subprocess.run([sys.executable, "-m", "digest", "send"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert rerun.returncode == 1 and "5 sent, 0 skipped, 0 failed, 1 unknown" in rerun.stdout
    retry = subprocess.run([sys.executable, "-m", "digest", "send", "--retry-unknown"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert retry.returncode == 0 and "1 sent" in retry.stdout
    assert sorted(r for _, rcpts, _ in box.messages for r in rcpts) == addresses
    store.close()


def test_two_sends_at_once_never_send_twice(tmp_path: Path,
                                            mailbox: tuple[Mailbox, SmtpServer]) -> None:
    box, server = mailbox
    settings, store, addresses = _planned(tmp_path, server, 40)
    env = _send_env(settings, server)
    runs = [subprocess.Popen([sys.executable, "-m", "digest", "send"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [run.communicate(timeout=120)[0].decode() for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    assert sorted(r for _, rcpts, _ in box.messages for r in rcpts) == addresses
    assert sum(int(out.split(" sent")[0].split()[-1]) for out in outputs) == 40
    store.close()


def test_8bit_and_base64_bodies_carry_the_same_content(world: tuple[Store, Settings, Mailbox]) -> None:
    """The first message goes before the server's extensions are known (base64); the rest
    as 8bit once it has said 8BITMIME. Both decode to the same, personalised, body."""
    store, settings, box = world
    for name in ("a", "b", "c"):
        book.add(store, f"{name}@example.org")
    ingest_files(store, settings, EXAMPLES / "2026-03-11.txt")
    assert sender(store, settings).run().sent == 3
    encodings = [[part["Content-Transfer-Encoding"] for part in m.get_payload()] for m in box.parsed()]
    assert encodings == [["base64", "base64"], ["8bit", "8bit"], ["8bit", "8bit"]]
    for raw in (raw for _, _, raw in box.messages):
        assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    bodies = []
    for message in box.parsed():
        text, html = (content(part) for part in message.get_payload())
        link = message["List-Unsubscribe"].split(", ")[1].strip("<>")
        assert link in text and link.replace("&", "&amp;") in html
        prefs = re.search(r"Your topics: (\S+)", text).group(1)  # type: ignore[union-attr]
        assert prefs.startswith("https://papers.example.org/preferences?token=") and prefs in html
        bodies.append((text.replace(link, "LINK").replace(prefs, "PREFS"),
                       html.replace(link, "LINK").replace(prefs, "PREFS")))
    assert bodies[0] == bodies[1] == bodies[2]
