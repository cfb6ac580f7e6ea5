"""Issue 8, items 1 and 2: a fetch and its ingest are one fact, and one source fails alone.

Real HTTP on 127.0.0.1 (tests/http_server.py), hostile where it matters: a redirect loop, a
gzip bomb, a server dripping one byte at a time, one that answers 304 to a listing never
ingested; and a real SIGKILL of `digest run` right after the fetch is stored.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from conftest import FIXTURES
from http_server import FixtureServer, Route

from digest.cli.main import main
from digest.config import EmailSettings, Settings, SourceSettings
from digest.errors import SourceError
from digest.pipeline import run_cycle
from digest.sources import fetch as fetch_module
from digest.sources.fetch import FetchLimits, fetch
from digest.store import Store, open_store
from digest.store.fetches import last_fetch

SOURCES = FIXTURES / "sources"
GOOD = (SOURCES / "daily_papers.json").read_bytes()
NOW = datetime(2026, 3, 13, 8, 0, tzinfo=UTC)


def day(n: int) -> datetime:
    return datetime(2026, 3, n, 8, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'live.sqlite3'}")
    yield opened
    opened.close()


def settings_for(store: Store, tmp_path: Path, *sources: SourceSettings, **extra: object) -> Settings:
    extra.setdefault("email", EmailSettings())
    return Settings(db_url=store.url, out_dir=tmp_path / "out", sources=sources,
                    **extra)  # type: ignore[arg-type]


def cycle(store: Store, settings: Settings, now: datetime = NOW, sleeps: list[float] | None = None):  # type: ignore[no-untyped-def]
    client = httpx.Client(timeout=5.0)
    try:
        return run_cycle(store, settings, now, client=client, lock_wait=0.5, send=False,
                         sleep=(sleeps.append if sleeps is not None else lambda _: None))
    finally:
        client.close()


def hf_item(title: str, **fields: object) -> dict[str, object]:
    return {"paper": {"id": "", "title": title, "summary": f"Abstract of {title}.", **fields},
            "title": title, "numComments": 0}


def gzip_bomb(inflated: int = 2 << 30) -> bytes:
    """About 2 MB of gzip inflating to `inflated` zero bytes: full-flushed 1 MiB segments
    are byte-identical, so the stream is built from one of them, not by compressing 2 GiB."""
    chunk = bytes(1 << 20)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = deflate.compress(chunk) + deflate.flush(zlib.Z_FULL_FLUSH)
    segment = deflate.compress(chunk) + deflate.flush(zlib.Z_FULL_FLUSH)
    count = inflated >> 20
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(chunk, crc)
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + first + segment * (count - 1)
            + deflate.flush() + struct.pack("<II", crc, inflated & 0xFFFFFFFF))


# -- item 1: a fetch and its ingest are one fact --------------------------------------------

KILL_AFTER_FETCH = """
import os, signal, sys
import digest.collect as collect
stored = collect.record_fetch
def record_then_die(*args, **kwargs):
    sha = stored(*args, **kwargs)
    print("fetch stored", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # the worst moment: stored, not yet ingested
collect.record_fetch = record_then_die
from digest.cli.main import main
sys.argv = ["digest", *sys.argv[1:]]
main()
"""


def test_a_run_killed_right_after_the_fetch_loses_nothing(
        tmp_path: Path, server: FixtureServer, store_url: str) -> None:
    server.routes["/api"] = Route(GOOD, "application/json", etag='"v1"')
    config = tmp_path / "digest.toml"
    config.write_text(f'[store]\nurl = "{store_url}"\n[output]\ndir = "{tmp_path / "out"}"\n'
                      f'[[sources]]\nname = "hf"\nlocation = "{server.url("/api")}"\n')
    command = ["--config", str(config), "run", "--no-send"]
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_FETCH, *command],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert killed.returncode == -9 and "fetch stored" in killed.stdout, killed.stderr
    opened = open_store(store_url)
    try:
        assert opened.counts()["snapshots"] == 0
        stored = last_fetch(opened, "hf")
        assert stored is not None and stored.etag == '"v1"'  # the fetch is stored
    finally:
        opened.close()
    rerun = subprocess.run([sys.executable, "-m", "digest", *command], capture_output=True,
                           text=True, timeout=60, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "2 new papers" in rerun.stdout
    # The stored body was ingested first; the fetch after it asked with its validators.
    assert server.hits[-1].headers.get("if-none-match") == '"v1"' and server.hits[-1].status == 304
    again = subprocess.run([sys.executable, "-m", "digest", *command], capture_output=True,
                           text=True, timeout=60, cwd=tmp_path)
    assert again.returncode == 0 and "0 new papers" in again.stdout
    opened = open_store(store_url)
    try:
        assert opened.counts()["snapshots"] == 1 and opened.counts()["papers"] == 2
        assert opened.counts()["digests"] == 1
    finally:
        opened.close()


def test_a_stored_fetch_is_ingested_before_a_newer_listing(
        tmp_path: Path, server: FixtureServer, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    server.routes["/api"] = Route(GOOD, "application/json", etag='"v1"')
    settings = settings_for(store, tmp_path, SourceSettings("hf", server.url("/api")))
    import digest.pipeline

    def crash(*args: object, **kwargs: object) -> None:
        raise MemoryError("the cycle died before the ingest")

    monkeypatch.setattr(store, "ingest_cycle", crash)
    with pytest.raises(MemoryError):
        cycle(store, settings)
    monkeypatch.undo()
    assert digest.pipeline and store.counts()["snapshots"] == 0
    newer = json.dumps([hf_item("A Paper Of The Next Day")]).encode()
    server.routes["/api"] = Route(newer, "application/json", etag='"v2"')
    report = cycle(store, settings, day(14))
    assert report.ok and report.fetched == {"hf": 2} and report.new == 3
    assert [r.captured_at for r in report.results] == [NOW, day(14)]


def test_a_listing_that_failed_to_parse_is_never_not_modified(
        tmp_path: Path, server: FixtureServer, store: Store) -> None:
    server.routes["/api"] = Route(b"[]", "application/json", etag='"empty"')
    settings = settings_for(store, tmp_path, SourceSettings("hf", server.url("/api")))
    first = cycle(store, settings)
    second = cycle(store, settings, day(14))
    assert not second.ok and second.failures == [
        ("hf", f"failing since 2026-03-13, 2 cycles: {first.failures[0][1]}")]
    assert "no papers in this hf-json snapshot" in second.failures[0][1]
    assert "if-none-match" not in server.hits[-1].headers and server.hits[-1].status == 200


def test_a_304_for_a_listing_never_ingested_is_the_sources_failure(
        tmp_path: Path, server: FixtureServer, store: Store) -> None:
    server.routes["/api"] = Route(b"[]", "application/json", etag='"empty"')
    settings = settings_for(store, tmp_path, SourceSettings("hf", server.url("/api")))
    first = cycle(store, settings)
    server.routes["/api"].always_304 = True
    second = cycle(store, settings, day(14))
    assert server.hits[-1].status == 304
    assert not second.ok and second.failures[0][0] == "hf"
    assert second.failures[0][1].endswith(first.failures[0][1])  # the same reason
    server.routes.pop("/api")
    with FixtureServer() as fresh:  # never fetched anything: a 304 out of nowhere
        fresh.routes["/api"] = Route(GOOD, always_304=True)
        other = settings_for(store, tmp_path, SourceSettings("other", fresh.url("/api")))
        third = cycle(store, other, day(15))
    assert third.failures == [("other", f"{fresh.url('/api')}: answered 304 Not Modified for a "
                               "listing never ingested — check the server; the next cycle asks "
                               "again without validators")]


def test_a_failing_source_says_since_when_alerts_daily_and_recovers(
        tmp_path: Path, server: FixtureServer, store: Store) -> None:
    server.routes["/api"] = Route(b"", failures=[404, 404, 404, 404])
    source = SourceSettings("hf", server.url("/api"))
    unreachable = EmailSettings(smtp_host="127.0.0.1", smtp_port=9, smtp_security="none")
    broken_mail = settings_for(store, tmp_path, source, alerts_email="ops@example.org",
                               email=unreachable)
    settings = settings_for(store, tmp_path, source, alerts_email="ops@example.org")
    cycle(store, broken_mail, day(13))  # the alert cannot go out: not marked as sent
    with store.read() as tx:
        assert not tx.cycles.alerted("hf", day(13).date())
    cycle(store, settings, datetime(2026, 3, 13, 9, tzinfo=UTC))  # retried at the next cycle
    third = cycle(store, settings, day(14))
    assert third.failures[0][1].startswith("failing since 2026-03-13, 3 cycles: ")
    alerts = sorted((tmp_path / "out/outbox/alerts").glob("*.eml"))
    assert len(alerts) == 2  # one a day while it lasts
    assert b"failing since 2026-03-13, 3 cycles" in alerts[-1].read_bytes()
    history = CliRunner().invoke(main, ["history", "--db", store.url])
    assert history.exit_code == 0
    assert "hf: failing since 2026-03-13, 3 cycles: " in history.stdout
    server.routes["/api"] = Route(GOOD, "application/json")
    recovered = cycle(store, settings, day(15))
    assert recovered.ok and recovered.notices == [
        "hf: recovered after 3 failed cycles (failing since 2026-03-13)"]
    with store.read() as tx:
        last = tx.cycles.history()[-1]
    assert list(last.notices) == recovered.notices
    history = CliRunner().invoke(main, ["history", "--db", store.url])
    assert "failing" not in history.stdout


# -- item 2: one source fails alone ---------------------------------------------------------

NESTED = b"[" * 100_000 + b"]" * 100_000
ORG_LIST = json.dumps([hf_item("Org As A List", organization={"name": ["a", "b"]})]).encode()


@pytest.mark.parametrize(("route", "reason"), [
    (Route(b"", status=302, headers={"Location": "/bad"}), "more than 5 redirects"),
    (Route(NESTED, "application/json"), "not valid JSON (nested too deep)"),
    (Route(ORG_LIST, "application/json"),
     "none of its 1 entries is valid (warning: BAD: item 1 skipped: field organization.name "
     "is list, not text)"),
    (Route(b"<html>x</html>", status=302, headers={"Location": "ftp://127.0.0.1/papers"}),
     "'ftp://127.0.0.1/papers' is not an http(s) URL"),
    (Route(b"", status=503, headers={"Retry-After": "7200"}),
     "HTTP 503 with Retry-After 7200 s, past the 120 s deadline — the server asks to wait until "
     "2026-03-13 10:00 UTC"),
], ids=["redirect-loop", "deep-json", "org-list", "ftp-redirect", "retry-after-too-long"])
def test_a_hostile_source_fails_alone(tmp_path: Path, server: FixtureServer, store: Store,
                                      route: Route, reason: str) -> None:
    server.routes["/good"] = Route(GOOD, "application/json")
    server.routes["/bad"] = route
    settings = settings_for(store, tmp_path, SourceSettings("good", server.url("/good")),
                            SourceSettings("bad", server.url("/bad")),
                            alerts_email="ops@example.org")
    report = cycle(store, settings)
    assert not report.ok and [name for name, _ in report.failures] == ["bad"]
    assert reason.replace("BAD", server.url("/bad")) in report.failures[0][1]
    assert report.digest and report.digest.paper_count == 2  # the good source's digest
    (alert,) = (tmp_path / "out/outbox/alerts").glob("*.eml")
    assert b"source bad failed" in alert.read_bytes()


def test_a_gzip_bomb_stops_at_the_size_limit(tmp_path: Path, server: FixtureServer,
                                             store: Store) -> None:
    bomb = gzip_bomb()
    assert len(bomb) < 2_200_000
    server.routes["/good"] = Route(GOOD, "application/json")
    server.routes["/bomb"] = Route(bomb, "application/json", encoding="gzip")
    settings = settings_for(store, tmp_path, SourceSettings("good", server.url("/good")),
                            SourceSettings("bomb", server.url("/bomb")))
    started = time.monotonic()
    tracemalloc.start()
    try:
        report = cycle(store, settings)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 20
    assert peak < 48_000_000, peak  # the 20 MB limit and a chunk, not a whole inflated read
    assert report.failures == [("bomb", f"{server.url('/bomb')}: response larger than 20,000,000 "
                                "bytes (decoded) — raise fetch.max_bytes if the listing really is "
                                "that big")]
    assert report.digest and report.digest.paper_count == 2


def test_a_dripping_server_cannot_outlast_the_deadline(tmp_path: Path, server: FixtureServer,
                                                       store: Store) -> None:
    server.routes["/drip"] = Route(GOOD, "application/json", drip=0.25)  # ~3 min for it all
    settings = settings_for(store, tmp_path, SourceSettings("drip", server.url("/drip")),
                            fetch=FetchLimits(deadline=2))
    started = time.monotonic()
    report = cycle(store, settings)
    elapsed = time.monotonic() - started
    assert 1.9 < elapsed < 4, elapsed
    assert report.failures == [("drip", f"{server.url('/drip')}: response not complete within the "
                                "2 s deadline — raise fetch.deadline, or check the server")]


def test_retry_after_is_honoured_when_it_fits_the_deadline(tmp_path: Path, server: FixtureServer,
                                                           store: Store) -> None:
    server.routes["/api"] = Route(GOOD, "application/json", failures=[429, 503],
                                  failure_headers={"Retry-After": "7"})
    sleeps: list[float] = []
    report = cycle(store, settings_for(store, tmp_path, SourceSettings("hf", server.url("/api"))),
                   sleeps=sleeps)
    assert report.ok and report.new == 2 and sleeps == [7.0, 7.0]
    assert [h.status for h in server.hits] == [429, 503, 200]


def test_retry_after_as_a_date_is_read_against_the_cycles_clock(
        tmp_path: Path, server: FixtureServer, store: Store) -> None:
    server.routes["/api"] = Route(GOOD, "application/json", failures=[503],
                                  failure_headers={"Retry-After": "Fri, 13 Mar 2026 08:00:30 GMT"})
    sleeps: list[float] = []
    report = cycle(store, settings_for(store, tmp_path, SourceSettings("hf", server.url("/api"))),
                   sleeps=sleeps)
    assert report.ok and sleeps == [30.0]


def test_a_permanent_redirect_is_followed_and_reported(tmp_path: Path, server: FixtureServer,
                                                       store: Store) -> None:
    server.routes["/old"] = Route(b"", status=301, headers={"Location": "/new"})
    server.routes["/new"] = Route(GOOD, "application/json")
    report = cycle(store, settings_for(store, tmp_path, SourceSettings("hf", server.url("/old"))))
    assert report.ok and report.new == 2
    assert report.notices == [f"hf: {server.url('/old')} moved permanently to "
                              f"{server.url('/new')} — update sources.location"]


def test_no_redirect_from_a_public_address_to_an_internal_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_module, "resolve", lambda host: {
        "papers.example.org": ["93.184.216.34"], "intranet.example.org": ["10.1.2.3"],
    }.get(host, [host]))
    hops = {"https://papers.example.org/api": "http://127.0.0.1:8080/admin",
            "https://papers.example.org/v2": "http://intranet.example.org/",
            "https://papers.example.org/v3": "http://[fe80::1]/",
            "https://papers.example.org/ok": "https://papers.example.org/final"}

    def handler(request: httpx.Request) -> httpx.Response:
        target = hops.get(str(request.url))
        if target:
            return httpx.Response(302, headers={"Location": target})
        return httpx.Response(200, content=GOOD)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    for origin in list(hops)[:3]:
        with pytest.raises(SourceError, match="redirected to an internal address"):
            fetch(origin, client=client, sleep=lambda _: None)
    assert fetch("https://papers.example.org/ok", client=client).body == GOOD
    assert fetch_module.is_internal("169.254.169.254") and not fetch_module.is_internal("8.8.8.8")


def test_entries_with_wrong_types_are_skipped_with_a_warning(
        tmp_path: Path, server: FixtureServer, store: Store) -> None:
    items = [hf_item("A Good Paper"), hf_item("Bad Authors", authors="Ada"),
             hf_item("No Optional Fields"), "not an object"]
    del items[2]["paper"]["summary"]  # type: ignore[index]
    server.routes["/api"] = Route(json.dumps(items).encode(), "application/json")
    report = cycle(store, settings_for(store, tmp_path, SourceSettings("hf", server.url("/api"))))
    assert report.ok and report.new == 2
    where = server.url("/api")
    assert report.notices == [f"warning: {where}: item 2 skipped: field authors is str, not a list",
                              f"warning: {where}: item 4 skipped: field paper is str, not an object"]


def test_two_sources_with_the_same_bytes_or_papers_are_one_cycles_papers_once(
        tmp_path: Path, server: FixtureServer, store: Store) -> None:
    server.routes["/a"] = Route(GOOD, "application/json")
    server.routes["/b"] = Route(GOOD, "application/json")
    server.routes["/c"] = Route(GOOD.replace(b"  {", b" {"), "application/json")  # other bytes
    settings = settings_for(store, tmp_path, *(SourceSettings(n, server.url(f"/{n}")) for n in "abc"))
    report = cycle(store, settings)
    assert report.ok and report.new == 2 and report.digest and report.digest.paper_count == 2
    assert report.notices == ["b: serves the same bytes as a; ingested once"]
    assert store.counts()["snapshots"] == 2 and store.counts()["papers"] == 2


def test_a_nul_in_a_title_or_abstract_is_stored_on_both_backends(
        tmp_path: Path, server: FixtureServer, store_url: str) -> None:
    item = hf_item("Null\x00Title")
    item["paper"]["summary"] = "An abstract\x00 with a NUL."  # type: ignore[index]
    item["organization"] = {"name": "lab\x00", "fullname": "Lab\x00 One"}
    server.routes["/api"] = Route(json.dumps([item]).encode(), "application/json")
    opened = open_store(store_url)
    try:
        report = cycle(opened, settings_for(opened, tmp_path, SourceSettings("hf", server.url("/api"))))
        assert report.ok and report.digest
        (paper,) = opened.digest_papers(report.digest.name)
        assert (paper.paper.title, paper.paper.abstract, paper.paper.org_name) == (
            "NullTitle", "An abstract with a NUL.", "Lab One")
    finally:
        opened.close()


def test_a_count_no_column_can_hold_is_unknown_on_both_backends(
        tmp_path: Path, server: FixtureServer, store_url: str) -> None:
    """3e9 upvotes is a corrupt page, not a count: both backends keep it as unknown (a
    binary COPY into PostgreSQL's int4 would wrap it to -1294967296 without a word)."""
    item = hf_item("Hugely Upvoted", upvotes=3_000_000_000)
    item["numComments"] = 2**40
    server.routes["/api"] = Route(json.dumps([item, hf_item("Plain Paper", upvotes=7)]).encode(),
                                  "application/json")
    opened = open_store(store_url)
    try:
        report = cycle(opened, settings_for(opened, tmp_path, SourceSettings("hf", server.url("/api"))))
        assert report.ok and report.digest
        papers = opened.digest_papers(report.digest.name)
        assert [(p.paper.title, p.upvotes, p.comments) for p in papers] == [
            ("Hugely Upvoted", None, None), ("Plain Paper", 7, 0)]
    finally:
        opened.close()


def test_a_nul_in_a_feed_id_is_the_same_paper_next_time_on_both_backends(store_url: str) -> None:
    """The key is looked up as JSON text, which SQLite cuts at a NUL: the id loses its NUL
    once, when the paper is made, so the second sighting finds the first."""
    from digest.models import Listing, Paper, Snapshot

    def seen(sha: str, day: int) -> Snapshot:
        paper = Paper(title="Weekly update", abstract="News.", ident="guid:tag:\x00x")
        return Snapshot(path=f"{day}.xml", source="feed", sha256=sha * 64,
                        captured_at=datetime(2026, 3, day, tzinfo=UTC), listings=(Listing(paper, 1),))

    opened = open_store(store_url)
    try:
        opened.ingest(seen("a", 12))
        result, _ = opened.ingest(seen("b", 13))
        assert (result.papers, result.new) == (1, 0)
        assert opened.counts()["papers"] == 1 and opened.counts()["sightings"] == 2
    finally:
        opened.close()


def test_fetch_limits_are_settings(tmp_path: Path) -> None:
    from digest.config import load_settings

    (tmp_path / "digest.toml").write_text("[fetch]\nmax_bytes = 1000\ndeadline = 9\n")
    settings = load_settings(env={"DIGEST_FETCH_MAX_REDIRECTS": "2"})
    assert settings.fetch == FetchLimits(max_bytes=1000, deadline=9.0, max_redirects=2)
    assert load_settings(env={}, config=os.devnull).fetch == FetchLimits(20_000_000, 120.0, 5)


@pytest.mark.parametrize(("encoding", "encode"), [
    ("gzip", lambda body: zlib.compress(body, wbits=31)),
    ("deflate", zlib.compress),  # zlib-wrapped, as the standard says
    ("deflate", lambda body: zlib.compress(body, wbits=-15)),  # raw, as some servers send it
], ids=["gzip", "deflate", "raw-deflate"])
def test_compressed_listings_are_decoded(tmp_path: Path, server: FixtureServer, store: Store,
                                         encoding: str, encode: object) -> None:
    server.routes["/api"] = Route(encode(GOOD), "application/json", encoding=encoding)  # type: ignore[operator]
    report = cycle(store, settings_for(store, tmp_path, SourceSettings("hf", server.url("/api"))))
    assert report.ok and report.new == 2
    assert server.hits[0].headers["accept-encoding"] == "gzip, deflate"


def test_an_unsupported_encoding_fails_the_source(tmp_path: Path, server: FixtureServer,
                                                  store: Store) -> None:
    server.routes["/api"] = Route(b"\x00\x01", "application/json", encoding="br")
    report = cycle(store, settings_for(store, tmp_path, SourceSettings("hf", server.url("/api"))))
    assert report.failures == [("hf", f"{server.url('/api')}: unsupported Content-Encoding 'br' — "
                                "check the server")]
