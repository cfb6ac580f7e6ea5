"""Consent is never restored by a side door: imports, the preferences page, replayed
confirmation links, old emails' links, and exported CSV opened in a spreadsheet."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from digest.cli.main import main
from digest.config import EmailSettings, Settings, WebSettings
from digest.mail import subscribers as book
from digest.mail.tokens import preferences_token, unsubscribe_token
from digest.publish.site import Site
from digest.store import Store, open_store
from digest.web.app import create_app

SECRET = "consent-test-secret-0123456789abcdef"

World = tuple[Store, Settings, TestClient]


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'web.sqlite3'}", out_dir=tmp_path / "out",
                        site=Site(base_url="https://papers.example.org"),
                        email=EmailSettings(secret=SECRET, from_address="papers@example.org"),
                        web=WebSettings(confirm_rate="10 per hour"))
    store = open_store(settings.db_url)
    app = create_app(store, settings)
    with TestClient(app, base_url="https://testserver") as client:
        yield store, settings, client
    store.close()


def csrf(client: TestClient) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/").text).group(1)  # type: ignore[union-attr]


def confirmation_tokens(settings: Settings, client: TestClient) -> list[str]:
    client.app.state.mailer.join()  # type: ignore[attr-defined]
    found = []
    for path in sorted((settings.out_dir / "outbox" / "confirm").glob("*.eml")):
        text = message_from_bytes(path.read_bytes(), policy=policy.default).get_content()  # type: ignore[attr-defined]
        found.append(re.search(r"confirm\?token=(\S+)", text).group(1))  # type: ignore[union-attr]
    return found


def status(store: Store, email: str) -> str | None:
    found = book.find(store, email)
    return found.status if found else None


def test_an_export_imported_into_a_new_store_keeps_who_left_and_who_paused(isolated: Path) -> None:
    for who in ("ada", "gone", "resting"):
        invoke("subscribers", "add", f"{who}@example.org")
    invoke("subscribers", "remove", "gone@example.org")
    invoke("subscribers", "pause", "resting@example.org")
    code, exported, _ = invoke("subscribers", "export")
    assert code == 0
    (isolated / "all.csv").write_text(exported)
    fresh = f"sqlite:///{isolated / 'fresh.sqlite3'}"
    code, out, err = invoke("subscribers", "import", str(isolated / "all.csv"), "--db", fresh)
    assert (code, out, err) == (0, "1 added, 0 updated, 2 kept paused or unsubscribed, 0 skipped\n", "")
    listed = invoke("subscribers", "list", "--db", fresh)[1].splitlines()
    assert [line.split()[:2] for line in listed[:-1]] == [
        ["active", "ada@example.org"], ["unsubscribed", "gone@example.org"],
        ["paused", "resting@example.org"]]
    # Imported again over the same store: the paused one stays paused, and it is said.
    (isolated / "back.csv").write_text("email,name,topics,status\nresting@example.org,,,active\n")
    code, out, err = invoke("subscribers", "import", str(isolated / "back.csv"), "--db", fresh)
    assert out == "0 added, 0 updated, 1 skipped\n"
    assert err == (f"{isolated / 'back.csv'}:2: skipped: resting@example.org is paused here: left "
                   "as it is (add it with `digest subscribers add` if they asked)\n")
    assert "paused" in invoke("subscribers", "list", "--db", fresh)[1].splitlines()[2]
    # Only an explicit add brings someone back.
    assert invoke("subscribers", "add", "gone@example.org", "--db", fresh)[1] == \
        "re-subscribed gone@example.org\n"


def test_an_unknown_status_in_an_import_is_a_skipped_row(isolated: Path) -> None:
    (isolated / "x.csv").write_text("email,status\nada@example.org,maybe\n")
    code, out, err = invoke("subscribers", "import", str(isolated / "x.csv"))
    assert (code, out) == (0, "0 added, 0 updated, 1 skipped\n")
    assert err == (f"{isolated / 'x.csv'}:2: skipped: status 'maybe' is not one of active, "
                   "paused, unsubscribed\n")


def test_exported_cells_never_run_as_spreadsheet_formulas(isolated: Path) -> None:
    store = open_store(f"sqlite:///{isolated / 'digest.sqlite3'}")
    book.add(store, "ada@example.org", name="=HYPERLINK(\"http://evil\")",
             topics="+cmd|' /C calc'!A0, @SUM(1), -2+3, plain")
    store.close()
    exported = invoke("subscribers", "export")[1]
    (row,) = list(csv.DictReader(io.StringIO(exported)))
    assert row["name"] == "'=HYPERLINK(\"http://evil\")"
    assert row["topics"].startswith("'+cmd")
    for cell in row.values():
        assert not cell.startswith(("=", "+", "-", "@")), cell
    # The quote is taken off again on import: the round trip keeps the values.
    (isolated / "back.csv").write_text(exported)
    fresh = f"sqlite:///{isolated / 'fresh.sqlite3'}"
    invoke("subscribers", "import", str(isolated / "back.csv"), "--db", fresh)
    assert invoke("subscribers", "export", "--db", fresh)[1] == exported


def test_saving_preferences_changes_topics_only(world: World) -> None:
    store, _, client = world
    ada, _ = book.add(store, "ada@example.org", topics="diffusion")
    book.set_status(store, "ada@example.org", book.PAUSED)
    token = preferences_token(SECRET, ada.id)
    saved = client.post("/preferences", data={"token": token, "topics": "robots",
                                              "csrf": csrf(client)})
    assert saved.status_code == 200
    after = book.find(store, "ada@example.org")
    assert after is not None and after.topics == ("robots",) and after.status == book.PAUSED


def test_a_confirmation_link_works_once_and_never_after_unsubscribing(world: World) -> None:
    store, settings, client = world
    client.post("/subscribe", data={"email": "ada@example.org", "csrf": csrf(client)})
    (token,) = confirmation_tokens(settings, client)
    done = client.post("/confirm", data={"token": token, "csrf": csrf(client)})
    assert done.status_code == 200 and status(store, "ada@example.org") == "active"
    ada = book.find(store, "ada@example.org")
    assert ada is not None
    client.post("/unsubscribe", data={"token": unsubscribe_token(SECRET, ada.id), "csrf": csrf(client)})
    assert status(store, "ada@example.org") == "unsubscribed"
    # The same link, replayed within its 48 hours, does not subscribe them again.
    replay = client.post("/confirm", data={"token": token, "csrf": csrf(client)})
    assert replay.status_code == 400 and "used already" in replay.text
    assert client.get(f"/confirm?token={token}").status_code == 400
    assert status(store, "ada@example.org") == "unsubscribed"
    # A new request makes a new link, which works (once).
    client.post("/subscribe", data={"email": "ada@example.org", "csrf": csrf(client)})
    fresh = confirmation_tokens(settings, client)[-1]
    assert fresh != token
    assert client.post("/confirm", data={"token": fresh, "csrf": csrf(client)}).status_code == 200
    assert status(store, "ada@example.org") == "active"


def test_an_old_preferences_link_says_unsubscribed_and_offers_the_way_back(world: World) -> None:
    store, settings, client = world
    ada, _ = book.add(store, "ada@example.org")
    book.set_status(store, "ada@example.org", book.UNSUBSCRIBED)
    answer = client.get(f"/preferences?token={preferences_token(SECRET, ada.id)}")
    assert answer.status_code == 200
    assert "You are unsubscribed" in answer.text and "not valid" not in answer.text
    assert 'action="https://papers.example.org/subscribe"' in answer.text
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', answer.text))
    assert fields["email"] == "ada@example.org"
    again = client.post("/subscribe", data=fields)
    assert again.status_code == 200 and "Check your inbox" in again.text
    assert len(confirmation_tokens(settings, client)) == 1
    assert status(store, "ada@example.org") == "unsubscribed"  # until they confirm
