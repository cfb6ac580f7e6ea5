"""One recipient never blocks the others: servers that hang up at RCPT or mid-DATA, answer
the end of a message slowly, or defer with 4xx; what the run and `digest deliveries` say."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES
from smtp_server import Mailbox, ScriptedSmtp, SmtpServer

from digest.cli.main import main
from digest.config import EmailSettings, Settings
from digest.mail import subscribers as book
from digest.mail.deliver import Sender
from digest.mail.transport import SmtpTransport
from digest.pipeline import ingest, prepare
from digest.publish.site import Site
from digest.store import Store, open_store

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SECRET = "delivery-faults-secret-0123456789abcdef"
DELAYS = (0.01, 0.02, 0.04)


def settings_for(tmp_path: Path, port: int) -> Settings:
    return Settings(db_url=f"sqlite:///{tmp_path / 'd.sqlite3'}", out_dir=tmp_path / "out",
                    site=Site(base_url="https://papers.example.org"),
                    email=EmailSettings(smtp_host="127.0.0.1", smtp_port=port, smtp_security="none",
                                        from_address="papers@example.org", secret=SECRET))


def planned(tmp_path: Path, port: int, people: int) -> tuple[Settings, Store, list[str]]:
    settings = settings_for(tmp_path, port)
    store = open_store(settings.db_url)
    addresses = [f"u{i:02d}@example.org" for i in range(1, people + 1)]
    for address in addresses:
        book.add(store, address)
    list(ingest(store, settings, prepare([EXAMPLES / "2026-03-11.txt"], None, NOW), NOW))
    return settings, store, addresses


def run(store: Store, settings: Settings, transport: SmtpTransport | None = None,
        sleeps: list[float] | None = None) -> Sender:
    return Sender(store, settings, transport or SmtpTransport(settings.email), now=lambda: NOW,
                  sleep=(sleeps if sleeps is not None else []).append, delays=DELAYS)


@pytest.fixture
def server() -> Iterator[tuple[Mailbox, SmtpServer]]:
    box = Mailbox()
    with SmtpServer(box) as running:
        yield box, running


def test_a_hang_up_at_one_rcpt_defers_that_one_and_everyone_else_gets_it(
        tmp_path: Path, server: tuple[Mailbox, SmtpServer]) -> None:
    box, smtp = server
    settings, store, people = planned(tmp_path, smtp.port, 20)
    box.script["u04@example.org"] = ["drop-rcpt"] * 10  # hangs up on this one, every time
    summary = run(store, settings).run()
    assert summary.stopped is None  # the server is reachable: the run goes on
    assert (summary.sent, summary.deferred) == (19, 1)
    assert all(len(box.to(p)) == 1 for p in people if p != "u04@example.org")
    # Tried once in order, then again after everyone else, a bounded number of times.
    assert box.attempts["u04@example.org"] == 1 + len(DELAYS)
    assert box.rcpt_order.index("u20@example.org") < box.rcpt_order.index("u04@example.org", 4)
    assert [p.line().split(":")[0] for p in summary.problems] == ["deferred"]
    assert "u04@example.org" in summary.problems[0].line()
    assert store.delivery_counts() == {"sent": 19, "pending": 1}
    # The next run sends it once the server takes it.
    box.script["u04@example.org"] = []
    box.attempts.clear()
    assert run(store, settings).run().sent == 1 and len(box.to("u04@example.org")) == 1
    store.close()


def test_4xx_recipients_wait_at_the_end_of_the_run_not_in_everyones_way(
        tmp_path: Path, server: tuple[Mailbox, SmtpServer]) -> None:
    box, smtp = server
    settings, store, people = planned(tmp_path, smtp.port, 10)
    for busy in ("u02@example.org", "u05@example.org"):
        box.script[busy] = ["451 4.3.0 try again later"] * 2
    delivered_at_sleep: list[int] = []
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        delivered_at_sleep.append(len(box.messages))

    sender = Sender(store, settings, SmtpTransport(settings.email), now=lambda: NOW, sleep=sleep,
                    delays=DELAYS)
    summary = sender.run()
    assert (summary.sent, summary.deferred) == (10, 0)
    # No waiting at all until the 8 others were sent; then one wait per round, shared.
    assert delivered_at_sleep[0] == 8 and sleeps == list(DELAYS[:2])
    store.close()


def test_a_drop_mid_data_is_retried_not_unknown(tmp_path: Path) -> None:
    with ScriptedSmtp(["drop-mid-data"]) as smtp:
        settings, store, _ = planned(tmp_path, smtp.port, 2)
        summary = run(store, settings).run()
        assert (summary.sent, summary.unknown, summary.deferred) == (2, 0, 0)
        assert len(smtp.messages) == 2
    assert store.delivery_counts() == {"sent": 2}
    store.close()


def test_a_slow_final_reply_is_waited_for_not_made_unknown(
        tmp_path: Path, server: tuple[Mailbox, SmtpServer]) -> None:
    box, smtp = server
    settings, store, _ = planned(tmp_path, smtp.port, 1)

    def slow(count: int) -> None:
        time.sleep(1.0)  # longer than a command may take below, shorter than a whole message

    box.on_data = slow
    transport = SmtpTransport(settings.email, timeout=0.3, final_reply_timeout=60)
    summary = run(store, settings, transport).run()
    assert (summary.sent, summary.unknown) == (1, 0)
    assert len(box.messages) == 1
    store.close()


def test_the_final_reply_waits_ten_minutes_by_default() -> None:
    transport = SmtpTransport(EmailSettings(smtp_host="127.0.0.1"))
    assert (transport.timeout, transport.final_reply_timeout) == (30, 600)


def test_the_run_names_each_problem_and_deliveries_lists_them(
        tmp_path: Path, server: tuple[Mailbox, SmtpServer]) -> None:
    box, smtp = server
    settings, store, _ = planned(tmp_path, smtp.port, 4)
    store.close()
    box.script["u01@example.org"] = ["550 5.1.1 no such user"]
    box.script["u02@example.org"] = ["drop-after-data"]
    box.script["u03@example.org"] = ["451 4.3.0 greylisted"] * 10
    env = {**smtp.env(), "DIGEST_DB": settings.db_url, "DIGEST_OUT": str(settings.out_dir),
           "DIGEST_SECRET": SECRET, "DIGEST_SITE_BASE_URL": "https://papers.example.org",
           "DIGEST_EMAIL_FROM": "papers@example.org", "DIGEST_EMAIL_RETRIES": "0"}
    result = CliRunner().invoke(main, ["send"], env=env)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == (
        "1 sent, 0 skipped, 1 failed, 1 deferred (will retry), 1 unknown (see --retry-unknown)")
    problems = result.stderr.splitlines()
    assert "failed: 2026-03-11 to u01@example.org: 550 5.1.1 no such user" in problems
    assert any(p.startswith("unknown: 2026-03-11 to u02@example.org: no reply") for p in problems)
    assert "deferred: 2026-03-11 to u03@example.org: 451 4.3.0 greylisted" in problems
    listed = CliRunner().invoke(main, ["deliveries"], env=env)
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert [line.split()[:3] for line in lines[:-1]] == [
        ["failed", "2026-03-11", "u01@example.org"], ["unknown", "2026-03-11", "u02@example.org"],
        ["deferred", "2026-03-11", "u03@example.org"]]
    assert lines[0].endswith("550 5.1.1 no such user") and lines[-1] == "3 deliveries"
    failed = CliRunner().invoke(main, ["deliveries", "--status", "failed"], env=env)
    assert failed.stdout.splitlines()[-1] == "1 deliveries" and "u01" in failed.stdout
    sent = CliRunner().invoke(main, ["deliveries", "--status", "sent"], env=env)
    assert "u04@example.org" in sent.stdout
    bad = CliRunner().invoke(main, ["deliveries", "--status", "lost"], env=env)
    assert bad.exit_code == 2 and "'lost' is not one of" in bad.stderr
