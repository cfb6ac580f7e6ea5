"""The web app through Starlette's test client: every endpoint, status and header,
forged and expired tokens, CSRF failures, hostile input."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import unquote

import pytest
from conftest import EXAMPLES, FIXTURES, entry, page
from starlette.testclient import TestClient

from digest.config import EmailSettings, Settings
from digest.mail import subscribers as book
from digest.mail.tokens import confirm_token, preferences_token, unsubscribe_token
from digest.pipeline import ingest, prepare
from digest.publish.site import Site
from digest.store import Store, open_store
from digest.web.app import create_app

SECRET = "web-test-secret-0123456789abcdefghij"
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Store, Settings, TestClient, dict[str, float]]]:
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'web.sqlite3'}", out_dir=tmp_path / "out",
                        site=Site(base_url="https://papers.example.org"),
                        email=EmailSettings(secret=SECRET, from_address="papers@example.org"))
    store = open_store(settings.db_url)
    hostile = tmp_path / "2026-03-14.txt"
    hostile.write_bytes((FIXTURES / "pages/hostile.txt").read_bytes().replace(b"Mar 13", b"Mar 14"))
    list(ingest(store, settings, prepare([EXAMPLES, hostile], None, NOW), NOW))
    clock = {"now": datetime.now(UTC).timestamp()}
    app = create_app(store, settings, clock=lambda: clock["now"])
    with TestClient(app, base_url="https://testserver") as client:
        yield store, settings, client, clock
    store.close()


def csrf(client: TestClient) -> str:
    page = client.get("/").text
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


def outbox(settings: Settings, folder: str, client: TestClient | None = None) -> list[bytes]:
    if client is not None:  # confirmation emails leave from a background thread
        client.app.state.mailer.join()  # type: ignore[attr-defined]
    return [p.read_bytes() for p in sorted((settings.out_dir / "outbox" / folder).glob("*.eml"))]


def test_archive_digest_and_paper_pages(world: tuple[Store, Settings, TestClient, dict[str, float]]) -> None:
    store, _, client, _ = world
    home = client.get("/")
    assert home.status_code == 200 and "text/html" in home.headers["content-type"]
    assert home.headers["x-content-type-options"] == "nosniff"
    assert home.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in home.headers["content-security-policy"]
    assert home.text.index("Mar 14, 2026") < home.text.index("Mar 11, 2026")
    assert 'action="https://papers.example.org/subscribe"' in home.text
    digest = client.get("/digests/2026-03-14.html")
    assert digest.status_code == 200 and "&lt;script&gt;alert" in digest.text
    assert "<script>" not in digest.text
    assert client.get("/digests/2031-01-01").status_code == 404
    key = store.digest_papers("2026-03-11")[0].key
    first = client.get("/digests/2026-03-11")
    history = re.search(r'href="(https://papers\.example\.org/papers/[^"]+)">Sightings and ranks', first.text)
    assert history is not None and unquote(history.group(1)).endswith("/papers/" + key)
    paper = client.get(history.group(1).removeprefix("https://papers.example.org"))
    assert paper.status_code == 200 and "Tidal Attention" in paper.text
    assert paper.text.count("<tr>") == 3  # header + 2 sightings (Mar 11 and Mar 12)
    assert client.get("/papers/title:nothing-like-this").status_code == 404


def test_paper_page_chart_with_upvotes(world: tuple[Store, Settings, TestClient, dict[str, float]],
                                       tmp_path: Path) -> None:
    store, settings, client, _ = world
    for day, upvotes in (("2026-03-15", 3), ("2026-03-16", 9)):
        (tmp_path / f"{day}.json").write_bytes(
            (FIXTURES / "sources/daily_papers.json").read_bytes().replace(b'"upvotes": 41',
                                                                          f'"upvotes": {upvotes}'.encode()))
        list(ingest(store, settings, prepare([tmp_path / f"{day}.json"], None, NOW), NOW))
    page = client.get("/papers/arxiv:2603.04321").text
    assert "Upvotes over 2 sightings (max 7)" in page
    first_only = client.get(f"/papers/{store.digest_papers('2026-03-14')[0].key}").text
    assert "<polyline" not in first_only  # no upvotes known (page text): no chart
    sheep = client.get("/papers/title:counting sheep why vision language models cannot count beyond seven")
    assert "<polyline" in sheep.text and "max 9" in sheep.text


def test_feeds_with_etag_and_304(world: tuple[Store, Settings, TestClient, dict[str, float]]) -> None:
    _, _, client, _ = world
    for path, kind in (("/feed.xml", "application/rss+xml"), ("/atom.xml", "application/atom+xml")):
        first = client.get(path)
        assert first.status_code == 200 and first.headers["content-type"].startswith(kind)
        assert first.headers["etag"] and first.headers["last-modified"].endswith("GMT")
        assert f'href="https://papers.example.org{path}" rel="self"' in first.text
        again = client.get(path, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        # RFC 9110 §15.4.5: the validators and caching of the 200, no other metadata beside an ETag.
        assert (again.headers["etag"], again.headers["cache-control"]) == (
            first.headers["etag"], first.headers["cache-control"])
        assert "last-modified" not in again.headers and "content-type" not in again.headers
        assert again.headers["content-security-policy"] == first.headers["content-security-policy"]
        repeat = client.get(path)  # served from the encoded header lines: the same answer
        assert (repeat.content, repeat.headers) == (first.content, first.headers)


def test_double_opt_in(world: tuple[Store, Settings, TestClient, dict[str, float]]) -> None:
    store, settings, client, clock = world
    answer = client.post("/subscribe", data={"email": "New.Reader@Example.org", "topics": "robots",
                                             "csrf": csrf(client)})
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    assert book.find(store, "new.reader@example.org") is None  # nothing stored yet
    (mail,) = outbox(settings, "confirm", client)
    message = message_from_bytes(mail, policy=policy.default)
    url = re.search(r"https://papers\.example\.org/confirm\?token=\S+", message.get_content()).group(0)
    token = url.split("token=")[1]
    page = client.get(f"/confirm?token={token}")
    assert page.status_code == 200 and "Confirm your subscription" in page.text
    assert book.find(store, "new.reader@example.org") is None  # GET changes nothing
    done = client.post("/confirm", data={"token": token, "csrf": csrf(client)})
    assert done.status_code == 200 and "You are subscribed" in done.text
    sub = book.find(store, "new.reader@example.org")
    assert sub and sub.status == "active" and sub.topics == ("robots",)
    # Re-subscribing an active address: same answer, no email, nothing changes.
    again = client.post("/subscribe", data={"email": "new.reader@example.org", "csrf": csrf(client)})
    assert again.text.replace("new.reader@example.org", "X") == answer.text.replace(
        "New.Reader@example.org", "X")
    assert len(outbox(settings, "confirm", client)) == 1
    # An expired link (48 hours) changes nothing.
    late = confirm_token(SECRET, "late@example.org", "", "new")
    clock["now"] += 49 * 3600
    expired = client.post("/confirm", data={"token": late, "csrf": csrf(client)})
    assert expired.status_code == 400 and "expired" in expired.text
    assert book.find(store, "late@example.org") is None


OTHER_SECRET = "another-secret-of-32-characters-or-more"


@pytest.mark.parametrize("token", ["", "garbage", confirm_token(OTHER_SECRET, "x@example.org", "", "new")])
def test_forged_confirmation_tokens(world: tuple[Store, Settings, TestClient, dict[str, float]],
                                    token: str) -> None:
    store, _, client, _ = world
    assert client.get(f"/confirm?token={token}").status_code == 400
    assert client.post("/confirm", data={"token": token, "csrf": csrf(client)}).status_code == 400
    assert book.find(store, "x@example.org") is None


def test_subscribe_csrf_bad_address_and_rate_limit(
        world: tuple[Store, Settings, TestClient, dict[str, float]]) -> None:
    _, settings, client, _ = world
    assert client.post("/subscribe", data={"email": "a@example.org"}).status_code == 403
    assert client.post("/subscribe", data={"email": "a@example.org", "csrf": "x.y"}).status_code == 403
    bad = client.post("/subscribe", data={"email": "<script>@@", "csrf": csrf(client)})
    assert bad.status_code == 400 and "<script>" not in bad.text
    token = csrf(client)
    codes = [client.post("/subscribe", data={"email": f"r{i}@example.org", "csrf": token}).status_code
             for i in range(6)]
    assert codes[:4] == [200] * 4 and codes[-1] == 429  # 5 per 10 minutes, the bad one counted
    assert len(outbox(settings, "confirm", client)) == 4


def test_unsubscribe_page_form_and_one_click(
        world: tuple[Store, Settings, TestClient, dict[str, float]]) -> None:
    store, _, client, _ = world
    ada, _ = book.add(store, "ada@example.org")
    bob, _ = book.add(store, "bob@example.org")
    token = unsubscribe_token(SECRET, ada.id)
    page = client.get(f"/unsubscribe?token={token}")
    assert page.status_code == 200 and 'type="submit"' in page.text
    assert book.find(store, "ada@example.org").status == "active"  # type: ignore[union-attr]
    assert client.post("/unsubscribe", data={"token": token}).status_code == 403  # no CSRF
    done = client.post("/unsubscribe", data={"token": token, "csrf": csrf(client)})
    assert done.status_code == 200 and "Unsubscribed" in done.text
    assert book.find(store, "ada@example.org").status == "unsubscribed"  # type: ignore[union-attr]
    # RFC 8058: the provider POSTs List-Unsubscribe=One-Click to the URL from the header.
    one = client.post(f"/unsubscribe?token={unsubscribe_token(SECRET, bob.id)}",
                      content=b"List-Unsubscribe=One-Click",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert one.status_code == 200
    assert book.find(store, "bob@example.org").status == "unsubscribed"  # type: ignore[union-attr]


@pytest.mark.parametrize("token", ["", "bm90IGEgdG9rZW4", unsubscribe_token("other", 1)])
def test_forged_unsubscribe_tokens_change_nothing(
        world: tuple[Store, Settings, TestClient, dict[str, float]], token: str) -> None:
    store, _, client, _ = world
    book.add(store, "ada@example.org")
    assert client.get(f"/unsubscribe?token={token}").status_code == 400
    one = client.post(f"/unsubscribe?token={token}", content=b"List-Unsubscribe=One-Click",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert one.status_code == 400
    assert book.find(store, "ada@example.org").status == "active"  # type: ignore[union-attr]


def test_preferences(world: tuple[Store, Settings, TestClient, dict[str, float]]) -> None:
    store, _, client, _ = world
    ada, _ = book.add(store, "ada@example.org", topics="diffusion")
    token = preferences_token(SECRET, ada.id)
    page = client.get(f"/preferences?token={token}")
    assert page.status_code == 200 and 'value="diffusion"' in page.text
    saved = client.post("/preferences", data={"token": token, "topics": "robots, <b>x</b>",
                                              "csrf": csrf(client)})
    assert saved.status_code == 200 and "&lt;b&gt;x&lt;/b&gt;" in saved.text
    assert book.find(store, "ada@example.org").topics == ("robots", "<b>x</b>")  # type: ignore[union-attr]
    assert client.post("/preferences", data={"token": token, "topics": "z"}).status_code == 403
    assert client.get("/preferences?token=forged").status_code == 400


def test_preferences_list_others_checkbox(
        world: tuple[Store, Settings, TestClient, dict[str, float]]) -> None:
    """Issue 11: the checkbox shows the setting and saves it; topics are kept alongside."""
    store, _, client, _ = world
    ada, _ = book.add(store, "ada@example.org", topics="diffusion")
    token = preferences_token(SECRET, ada.id)
    page = client.get(f"/preferences?token={token}").text
    assert 'name="list_others" type="checkbox" value="yes">' in page  # unticked
    saved = client.post("/preferences", data={"token": token, "topics": "diffusion",
                                              "others_shown": "1", "list_others": "yes",
                                              "csrf": csrf(client)})
    assert saved.status_code == 200 and 'value="yes" checked>' in saved.text
    now = book.find(store, "ada@example.org")
    assert now is not None and now.list_others and now.topics == ("diffusion",)
    assert now.status == "active"
    # A form from before the checkbox (no others_shown) keeps the setting as it is.
    client.post("/preferences", data={"token": token, "topics": "robots", "csrf": csrf(client)})
    now = book.find(store, "ada@example.org")
    assert now is not None and now.list_others and now.topics == ("robots",)
    # Unticked: not posted, so off.
    client.post("/preferences", data={"token": token, "topics": "robots", "others_shown": "1",
                                      "csrf": csrf(client)})
    now = book.find(store, "ada@example.org")
    assert now is not None and not now.list_others and now.topics == ("robots",)


def _one_more_digest(store: Store, settings: Settings, tmp_path: Path, day: str) -> None:
    snapshot = tmp_path / f"{day}.txt"
    snapshot.write_text(page(entry("A Paper Published After Start"), header="Mar " + day[-2:]))
    list(ingest(store, settings, prepare([snapshot], None, NOW), NOW))


def test_pages_are_served_from_cache_until_the_next_publish(
        world: tuple[Store, Settings, TestClient, dict[str, float]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Rendered once per publish: repeats and 304s touch neither the store nor a template."""
    store, settings, client, _ = world
    feed, digest = client.get("/feed.xml"), client.get("/digests/2026-03-14")
    etag = feed.headers["etag"]

    def untouchable(*_: object, **__: object) -> None:
        raise AssertionError("the store was read for a cached page")
    for name in ("feed_papers", "digest", "digest_papers", "digests", "paper_history"):
        monkeypatch.setattr(store, name, untouchable)
    assert client.get("/feed.xml").content == feed.content
    assert client.get("/feed.xml", headers={"If-None-Match": etag}).status_code == 304
    again = client.get("/digests/2026-03-14", headers={"If-None-Match": digest.headers["etag"]})
    assert again.status_code == 304 and again.headers["x-content-type-options"] == "nosniff"
    monkeypatch.undo()
    _one_more_digest(store, settings, tmp_path, "2026-03-15")  # rewrites out/index.html
    fresh = client.get("/feed.xml", headers={"If-None-Match": etag})
    assert fresh.status_code == 200 and "A Paper Published After Start" in fresh.text
    assert "Mar 15, 2026" in client.get("/").text


def test_without_the_output_folder_pages_expire_after_the_ttl(
        world: tuple[Store, Settings, TestClient, dict[str, float]], tmp_path: Path) -> None:
    """A web app on another machine than the runs still shows a new digest, within the TTL."""
    store, settings, _, _ = world
    ticks = {"now": 1000.0}
    app = create_app(store, Settings(db_url=settings.db_url, out_dir=tmp_path / "elsewhere",
                                     site=settings.site, email=settings.email),
                     page_clock=lambda: ticks["now"])
    with TestClient(app, base_url="https://testserver") as client:
        assert "After Start" not in client.get("/feed.xml").text
        _one_more_digest(store, settings, tmp_path, "2026-03-15")
        assert "After Start" not in client.get("/feed.xml").text  # still the cached copy
        ticks["now"] += 31
        assert "After Start" in client.get("/feed.xml").text


def test_archive_is_cached_but_each_visitor_gets_their_own_csrf_token(
        world: tuple[Store, Settings, TestClient, dict[str, float]]) -> None:
    _, _, client, _ = world
    first = csrf(client)
    client.cookies.clear()
    second = csrf(client)
    assert first != second and "csrf-token-slot" not in client.get("/").text


def test_conditional_gets_as_readers_and_proxies_send_them(
        world: tuple[Store, Settings, TestClient, dict[str, float]]) -> None:
    """A weak ETag (a compressing proxy) and If-Modified-Since alone both get 304."""
    _, _, client, _ = world
    first = client.get("/atom.xml")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    for headers in ({"If-None-Match": f"W/{etag}"}, {"If-None-Match": f'"other", {etag}'},
                    {"If-Modified-Since": modified}, {"If-None-Match": "*"}):
        assert client.get("/atom.xml", headers=headers).status_code == 304, headers
    for headers in ({"If-None-Match": '"other"', "If-Modified-Since": modified},
                    {"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"},
                    {"If-Modified-Since": "not a date"}):
        assert client.get("/atom.xml", headers=headers).status_code == 200, headers
